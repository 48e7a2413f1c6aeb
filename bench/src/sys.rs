//! Facts about this process and machine that the bench tool needs: the
//! open-file limit, a description of the machine for reports, and a
//! connector that spreads many client sockets over several loopback source
//! addresses. (The resident memory of a process is read by
//! `zinx_test_support::rss`.)
//!
//! Portability: the open-file limit needs a Unix (`getrlimit`); elsewhere it
//! is reported as unlimited and left alone. Spreading sockets over loopback
//! sources needs Linux's `IP_BIND_ADDRESS_NO_PORT`; elsewhere the kernel
//! picks the source, which limits one run to about one ephemeral port range
//! of connections. The machine description reads Linux's `/proc`; elsewhere
//! it says "unknown".

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::net::{TcpSocket, TcpStream};

/// The `RLIMIT_NOFILE` of this process after [`raise_nofile`].
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct NofileLimit {
    /// Soft limit: what `open`/`socket` are held to.
    pub(crate) soft: u64,
    /// Hard limit: how far the soft limit may be raised without privilege.
    pub(crate) hard: u64,
}

#[cfg(unix)]
fn get_nofile() -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if rc == 0 {
        Ok(lim)
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(unix)]
fn set_nofile(soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: `lim` is a valid rlimit; setrlimit only reads it.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Raises the soft open-file limit towards `wanted`: to the hard limit, and
/// past it when the process may raise the hard limit too (root). Child
/// processes started afterwards inherit the result.
///
/// Returns the limit in force; the caller tells the user when it is still
/// below what they asked for.
#[cfg(unix)]
pub(crate) fn raise_nofile(wanted: u64) -> io::Result<NofileLimit> {
    let cur = get_nofile()?;
    let (soft, hard) = (cur.rlim_cur as u64, cur.rlim_max as u64);
    if soft >= wanted {
        return Ok(NofileLimit { soft, hard });
    }
    if wanted > hard && set_nofile(wanted, wanted).is_ok() {
        return Ok(NofileLimit {
            soft: wanted,
            hard: wanted,
        });
    }
    let soft = wanted.min(hard);
    set_nofile(soft, hard)?;
    Ok(NofileLimit { soft, hard })
}

/// Without `getrlimit` there is no limit to raise: reported as unlimited.
#[cfg(not(unix))]
pub(crate) fn raise_nofile(_wanted: u64) -> io::Result<NofileLimit> {
    Ok(NofileLimit {
        soft: u64::MAX,
        hard: u64::MAX,
    })
}

/// Descriptors kept free for everything that is not a session socket
/// (runtime, stdio, listeners, links, log files).
pub(crate) const NOFILE_RESERVE: u64 = 256;

/// Raises the open-file limit for `conns` sockets plus
/// [`NOFILE_RESERVE`], and warns on stderr when the limit still falls short.
pub(crate) fn ensure_nofile_for(conns: usize, what: &str) -> NofileLimit {
    let wanted = conns as u64 + NOFILE_RESERVE;
    match raise_nofile(wanted) {
        Ok(lim) => {
            if lim.soft < wanted {
                eprintln!(
                    "warning: {what} needs about {wanted} file descriptors but RLIMIT_NOFILE is \
                     {} (hard {}, and this process may not raise the hard limit): expect \
                     connection failures; raise it with `ulimit -Hn`/`ulimit -n` as root",
                    lim.soft, lim.hard
                );
            }
            lim
        }
        Err(e) => {
            eprintln!("warning: could not raise RLIMIT_NOFILE: {e}");
            NofileLimit { soft: 0, hard: 0 }
        }
    }
}

/// Sessions that fit in `limit` next to [`NOFILE_RESERVE`] other
/// descriptors.
pub(crate) fn sessions_within(limit: NofileLimit) -> usize {
    usize::try_from(limit.soft.saturating_sub(NOFILE_RESERVE)).unwrap_or(usize::MAX)
}

/// How [`Machine::describe`] names the system.
const OS_NAME: &str = if cfg!(target_os = "linux") {
    "Linux"
} else {
    std::env::consts::OS
};

/// The machine a report was measured on.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Machine {
    /// `std::thread::available_parallelism`: the cores this process may use.
    pub(crate) cores: usize,
    /// `model name` from `/proc/cpuinfo`.
    pub(crate) cpu_model: String,
    /// Kernel release (`/proc/sys/kernel/osrelease`).
    pub(crate) kernel: String,
    /// `MemTotal` from `/proc/meminfo`, in MiB.
    pub(crate) memory_mib: u64,
}

impl Machine {
    /// Reads the facts; anything unreadable is reported as "unknown" or 0.
    pub(crate) fn detect() -> Machine {
        let proc_file = |path: &str| {
            if cfg!(target_os = "linux") {
                std::fs::read_to_string(path).ok()
            } else {
                None
            }
        };
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0);
        let cpuinfo = proc_file("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == "model name").then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".to_string());
        let kernel = proc_file("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "unknown".to_string());
        let meminfo = proc_file("/proc/meminfo").unwrap_or_default();
        let memory_mib = meminfo
            .lines()
            .find_map(|l| {
                let rest = l.strip_prefix("MemTotal:")?;
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib / 1024)
            .unwrap_or(0);
        Machine {
            cores,
            cpu_model,
            kernel,
            memory_mib,
        }
    }

    /// One line for humans.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} cores (available_parallelism), CPU \"{}\", {} {}, {:.1} GiB RAM",
            self.cores,
            self.cpu_model,
            OS_NAME,
            self.kernel,
            self.memory_mib as f64 / 1024.0
        )
    }
}

/// Whether [`Connector`] spreads sockets over loopback sources: only where
/// `IP_BIND_ADDRESS_NO_PORT` exists (Linux).
const SPREADS: bool = cfg!(target_os = "linux");

/// Client sockets bound per loopback source address. The default ephemeral
/// port range (32768–60999) holds about 28k ports; staying well below it
/// leaves room for other connections and for sockets in TIME_WAIT.
const PER_SOURCE_IP: usize = 20_000;

/// Opens client connections to one server address.
///
/// One `(source ip, source port, dest ip, dest port)` tuple per connection
/// limits a single source address to the ephemeral port range. When the
/// server is on IPv4 loopback, connection `i` binds to source address
/// `base + i / 20_000` (127.0.0.2, 127.0.0.3, ...), which gives as many
/// tuples as needed. Elsewhere the kernel chooses the source.
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    /// Where to connect.
    addr: SocketAddr,
    /// First source address when spreading; `None` lets the kernel choose.
    base: Option<Ipv4Addr>,
}

impl Connector {
    /// A connector to `addr` that spreads over loopback sources starting at
    /// `base` when `addr` is IPv4 loopback.
    pub(crate) fn new(addr: SocketAddr, base: Ipv4Addr) -> Connector {
        let base = match addr.ip() {
            IpAddr::V4(ip) if SPREADS && ip.is_loopback() && base.is_loopback() => Some(base),
            _ => None,
        };
        Connector { addr, base }
    }

    /// A connector that lets the kernel choose the source address.
    pub(crate) fn plain(addr: SocketAddr) -> Connector {
        Connector { addr, base: None }
    }

    /// The source address connection `index` binds to, if any.
    fn source(&self, index: usize) -> Option<Ipv4Addr> {
        let base = self.base?;
        let offset = u32::try_from(index / PER_SOURCE_IP).ok()?;
        let ip = u32::from(base).checked_add(offset)?;
        // Stay inside 127.0.0.0/8.
        (ip >> 24 == 127).then_some(Ipv4Addr::from(ip))
    }

    /// Opens connection number `index`, with `TCP_NODELAY`.
    pub(crate) async fn connect(&self, index: usize) -> io::Result<TcpStream> {
        self.connect_from(self.source(index)).await
    }

    /// Opens a connection from loopback source `src` when this connector
    /// spreads (else the kernel chooses), with `TCP_NODELAY`.
    pub(crate) async fn connect_from(&self, src: Option<Ipv4Addr>) -> io::Result<TcpStream> {
        let stream = match src.filter(|_| self.base.is_some()) {
            Some(src) => {
                let socket = TcpSocket::new_v4()?;
                bind_address_no_port(&socket)?;
                socket.bind(SocketAddr::new(IpAddr::V4(src), 0))?;
                socket.connect(self.addr).await?
            }
            None => TcpStream::connect(self.addr).await?,
        };
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// Sets `IP_BIND_ADDRESS_NO_PORT`: `bind` then fixes only the source
/// address and `connect` picks the port. Without it every `bind` to port 0
/// scans the port space for a free port (tens of seconds for 20k sockets),
/// and a port could not be shared by connections to different servers.
#[cfg(target_os = "linux")]
fn bind_address_no_port(socket: &TcpSocket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: the fd is a live socket owned by `socket`; the option value is
    // a c_int that outlives the call, and its size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Not available here; [`Connector`] never spreads on this system, so this
/// is not reached.
#[cfg(not(target_os = "linux"))]
fn bind_address_no_port(_socket: &TcpSocket) -> io::Result<()> {
    Ok(())
}

/// Resolves `addr` (`host:port`) to its first socket address.
pub(crate) async fn resolve(addr: &str) -> Result<SocketAddr> {
    tokio::net::lookup_host(addr)
        .await
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .with_context(|| format!("{addr} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn sessions_spread_over_loopback_sources() {
        let c = Connector::new(
            "127.0.0.1:9000".parse().unwrap(),
            Ipv4Addr::new(127, 0, 0, 2),
        );
        assert_eq!(c.source(0), Some(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(
            c.source(PER_SOURCE_IP - 1),
            Some(Ipv4Addr::new(127, 0, 0, 2))
        );
        assert_eq!(c.source(PER_SOURCE_IP), Some(Ipv4Addr::new(127, 0, 0, 3)));
        assert_eq!(
            c.source(254 * PER_SOURCE_IP),
            Some(Ipv4Addr::new(127, 0, 1, 0))
        );
        // Never outside 127.0.0.0/8.
        let top = Connector::new(
            "127.0.0.1:9000".parse().unwrap(),
            Ipv4Addr::new(127, 255, 255, 255),
        );
        assert_eq!(top.source(PER_SOURCE_IP), None);
    }

    #[test]
    fn remote_servers_get_kernel_chosen_sources() {
        let c = Connector::new(
            "10.0.0.1:9000".parse().unwrap(),
            Ipv4Addr::new(127, 0, 0, 2),
        );
        assert_eq!(c.source(0), None);
        let c = Connector::plain("127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.source(0), None);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn spread_connections_use_their_source_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let c = Connector::new(addr, Ipv4Addr::new(127, 0, 0, 7));
        let client = c.connect(0).await.unwrap();
        let (_server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip(), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 7)));
        assert_eq!(client.local_addr().unwrap().ip(), peer.ip());
    }

    #[cfg(unix)]
    #[test]
    fn nofile_is_raised_to_what_is_allowed() {
        let before = get_nofile().unwrap();
        let lim = raise_nofile(before.rlim_cur as u64 + 1).unwrap();
        assert!(lim.soft >= (before.rlim_cur as u64 + 1).min(lim.hard));
        assert!(sessions_within(lim) < lim.soft as usize);
    }
}
