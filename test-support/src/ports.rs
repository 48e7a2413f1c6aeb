//! Free TCP ports on 127.0.0.1.

use std::io;
use std::net::TcpListener;

/// `n` ports nobody listens on right now, all distinct: every listener is
/// held until all are bound. (A port may still be taken by someone else
/// before the caller binds it; on loopback in a test run that is rare.)
pub fn free_ports(n: usize) -> io::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// One free port; panics when none can be had (a test helper).
pub fn free_port() -> u16 {
    free_ports(1).expect("a free port")[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_taken_together_differ() {
        let mut p = free_ports(8).unwrap();
        p.sort_unstable();
        p.dedup();
        assert_eq!(p.len(), 8);
        assert!(p.iter().all(|&p| p != 0));
    }
}
