//! Linux interface names: the kernel's rules, checked before any syscall so users get a message
//! instead of a bare `EINVAL`. Shared by TAP creation (dataplane) and attach (netns).

/// The longest interface name the kernel accepts (`IFNAMSIZ` minus the terminating NUL).
pub const IFNAME_MAX_LEN: usize = libc::IFNAMSIZ - 1;

/// Checks an interface name the way the kernel will (`dev_valid_name`), so users get a message
/// instead of a bare `EINVAL`. `%d` patterns pass; the kernel expands them.
pub fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.len() > IFNAME_MAX_LEN {
        return Err(format!(
            "'{name}' is {} bytes long; interface names have at most {IFNAME_MAX_LEN}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("'{name}' is not allowed as an interface name"));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| c == '/' || c == ':' || c == '\0' || c.is_whitespace())
    {
        return Err(format!(
            "'{}' contains {c:?}; interface names may not contain '/', ':', NUL or whitespace",
            name.escape_debug()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifname_rules() {
        assert!(check_ifname("eth0").is_ok());
        assert!(check_ifname("vsw%d").is_ok());
        assert!(check_ifname("a23456789012345").is_ok());
        assert!(check_ifname("a234567890123456")
            .expect_err("must fail")
            .contains("at most 15"));
        assert!(check_ifname("").is_err());
        assert!(check_ifname(".").is_err());
        assert!(check_ifname("..").is_err());
        assert!(check_ifname("a/b").is_err());
        assert!(check_ifname("a:b").is_err());
        assert!(check_ifname("a b").is_err());
        assert!(check_ifname("a\0b").is_err());
    }
}
