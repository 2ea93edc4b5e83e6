//! Frames lost at a TAP's own queue: a container sent faster than the switch read, the TAP's
//! queue (its `txqueuelen`) was full, and the kernel dropped the frame and counted it in the
//! interface's `tx_dropped`. The switch never sees these frames, so only the interface's own
//! counter knows; `stats` reads it from the container's namespace, where the interface lives.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;

use super::Tap;
use crate::core::PortId;

/// Each TAP's `tx_dropped`, read in its namespace. A TAP whose counter cannot be read (its
/// namespace is going away, or the kernel is older than 5.2) is left out.
pub(super) fn tap_overruns(taps: Vec<(PortId, Arc<Tap>)>) -> HashMap<PortId, u64> {
    if taps.is_empty() {
        return HashMap::new();
    }
    // setns moves the calling thread: a thread of its own, which ends with the visit.
    let visit = std::thread::Builder::new()
        .name("vswitch-overruns".into())
        .spawn(move || {
            taps.iter()
                .filter_map(|(port, tap)| match tx_dropped(tap) {
                    Ok(n) => Some((*port, n)),
                    Err(e) => {
                        tracing::debug!("tx_dropped of port {}: {e}", port.0);
                        None
                    }
                })
                .collect()
        });
    match visit.map(|t| t.join()) {
        Ok(Ok(found)) => found,
        Ok(Err(_)) | Err(_) => HashMap::new(),
    }
}

fn tx_dropped(tap: &Tap) -> io::Result<u64> {
    let ns = tap.netns()?;
    let name = tap.current_name()?;
    crate::netns::enter_netns(ns.as_fd())?;
    let dev = std::fs::read_to_string("/proc/thread-self/net/dev")?;
    netdev_tx_dropped(&dev, &name).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{name} is not in its namespace's /proc/net/dev"),
        )
    })
}

/// The transmit `drop` column of `ifname`'s line in the text of `/proc/net/dev`.
fn netdev_tx_dropped(text: &str, ifname: &str) -> Option<u64> {
    text.lines().skip(2).find_map(|line| {
        let (name, fields) = line.split_once(':')?;
        if name.trim() != ifname {
            return None;
        }
        // Receive: bytes packets errs drop fifo frame compressed multicast; transmit: bytes
        // packets errs drop ...
        fields.split_whitespace().nth(11)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // From a container whose eth0 (a TAP) dropped 4242 frames it was sent.
    const DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1200      12    0    0    0     0          0         0     1200      12    0    0    0     0       0          0
  eth0: 9876543   10001    1    2    0     0          0         3 123456789   54321    0 4242    0     0       0          0
 eth10:       0       0    0    0    0     0          0         0        0       0    0    7    0     0       0          0
";

    #[test]
    fn reads_the_transmit_drop_column_of_the_named_interface() {
        assert_eq!(netdev_tx_dropped(DEV, "eth0"), Some(4242));
        assert_eq!(netdev_tx_dropped(DEV, "eth10"), Some(7));
        assert_eq!(netdev_tx_dropped(DEV, "lo"), Some(0));
    }

    #[test]
    fn a_missing_interface_or_a_short_line_is_none() {
        assert_eq!(netdev_tx_dropped(DEV, "eth1"), None);
        assert_eq!(netdev_tx_dropped(DEV, "eth"), None);
        assert_eq!(netdev_tx_dropped("h\nh\n  eth0: 1 2 3\n", "eth0"), None);
        assert_eq!(netdev_tx_dropped("", "eth0"), None);
    }
}
