//! Address allocation inside a network's subnet.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// The first free host address of `subnet`: never the network or broadcast address (for
/// prefixes up to /30), never the gateway, never one in `taken`.
pub fn next_free(
    subnet: Ipv4Net,
    gateway: Option<Ipv4Addr>,
    taken: &BTreeSet<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    subnet
        .hosts()
        .find(|ip| Some(*ip) != gateway && !taken.contains(ip))
}

/// The default gateway of `subnet`: its first host address (Docker's choice too).
pub fn default_gateway(subnet: Ipv4Net) -> Option<Ipv4Addr> {
    subnet.hosts().next()
}

/// Why an address cannot be given to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("{ip} is outside the network's subnet {subnet}")]
    Outside { ip: Ipv4Addr, subnet: Ipv4Net },
    #[error("{ip} is the network or broadcast address of {subnet}")]
    NetworkOrBroadcast { ip: Ipv4Addr, subnet: Ipv4Net },
    #[error("{0} is the network's gateway address")]
    Gateway(Ipv4Addr),
}

/// Whether `ip` may be given to a container of `subnet`.
pub fn assignable(
    subnet: Ipv4Net,
    gateway: Option<Ipv4Addr>,
    ip: Ipv4Addr,
) -> Result<(), IpamError> {
    if !subnet.contains(&ip) {
        return Err(IpamError::Outside { ip, subnet });
    }
    if subnet.prefix_len() <= 30 && (ip == subnet.network() || ip == subnet.broadcast()) {
        return Err(IpamError::NetworkOrBroadcast { ip, subnet });
    }
    if Some(ip) == gateway {
        return Err(IpamError::Gateway(ip));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("cidr")
    }

    #[test]
    fn the_default_gateway_is_the_first_host_address() {
        let gw = |s| default_gateway(net(s));
        assert_eq!(gw("10.0.0.0/24"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(gw("10.0.0.0/30"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(gw("10.8.0.0/13"), Some(Ipv4Addr::new(10, 8, 0, 1)));
    }

    #[test]
    fn skips_network_gateway_and_taken() {
        let n = net("10.0.0.0/29");
        let gw = Some(Ipv4Addr::new(10, 0, 0, 1));
        let mut taken = BTreeSet::new();
        assert_eq!(next_free(n, gw, &taken), Some(Ipv4Addr::new(10, 0, 0, 2)));
        taken.insert(Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(next_free(n, gw, &taken), Some(Ipv4Addr::new(10, 0, 0, 3)));
        taken.extend((3..=6).map(|i| Ipv4Addr::new(10, 0, 0, i)));
        assert_eq!(
            next_free(n, gw, &taken),
            None,
            "10.0.0.7 is the broadcast address"
        );
    }

    #[test]
    fn assignable_names_the_problem() {
        let n = net("10.0.0.0/24");
        let gw = Some(Ipv4Addr::new(10, 0, 0, 1));
        assert!(assignable(n, gw, Ipv4Addr::new(10, 0, 0, 9)).is_ok());
        assert!(assignable(n, gw, Ipv4Addr::new(10, 0, 1, 9))
            .unwrap_err()
            .to_string()
            .contains("outside"));
        assert!(assignable(n, gw, Ipv4Addr::new(10, 0, 0, 0))
            .unwrap_err()
            .to_string()
            .contains("network or broadcast"));
        assert!(assignable(n, gw, Ipv4Addr::new(10, 0, 0, 255))
            .unwrap_err()
            .to_string()
            .contains("broadcast"));
        assert!(assignable(n, gw, Ipv4Addr::new(10, 0, 0, 1))
            .unwrap_err()
            .to_string()
            .contains("gateway"));
    }
}
