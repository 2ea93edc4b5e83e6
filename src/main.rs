fn main() {
    println!("vswitch {}", env!("CARGO_PKG_VERSION"));
}
