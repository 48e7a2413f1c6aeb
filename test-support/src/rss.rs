//! The resident set size of a process, from `/proc/PID/status` (Linux).
//! Elsewhere every reading is an `Unsupported` error (or, from
//! [`rss_kib`], a panic).

use std::io;

/// VmRSS of process `pid` in KiB. Panics, saying why, when it cannot be
/// read (a test helper: a check against a reading of 0 would pass
/// untested); tools use [`RssReader`], which returns errors.
pub fn rss_kib(pid: u32) -> u64 {
    RssReader::open(pid)
        .and_then(|mut r| r.kib())
        .unwrap_or_else(|e| panic!("cannot read the RSS of process {pid}: {e}"))
}

/// Reads the resident set size of one process, keeping its
/// `/proc/PID/status` open so that a reading still works when this process
/// has used up its file descriptors on sessions.
#[derive(Debug)]
pub struct RssReader {
    /// `/proc/PID/status`, re-read from the start each time.
    #[cfg(target_os = "linux")]
    file: std::fs::File,
    /// For messages.
    path: String,
}

impl RssReader {
    /// Opens `/proc/PID/status`.
    #[cfg(target_os = "linux")]
    pub fn open(pid: u32) -> io::Result<RssReader> {
        let path = format!("/proc/{pid}/status");
        let file = std::fs::File::open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("opening {path}: {e}")))?;
        Ok(RssReader { file, path })
    }

    /// Opens `/proc/PID/status`: not on this system.
    #[cfg(not(target_os = "linux"))]
    pub fn open(pid: u32) -> io::Result<RssReader> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("reading the RSS of process {pid} needs Linux's /proc"),
        ))
    }

    /// VmRSS in KiB.
    #[cfg(target_os = "linux")]
    pub fn kib(&mut self) -> io::Result<u64> {
        use std::io::{Read, Seek, SeekFrom};
        let mut status = String::new();
        self.file
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.file.read_to_string(&mut status))
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("reading {} (has the process exited?): {e}", self.path),
                )
            })?;
        parse_vm_rss(&status).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} has no readable VmRSS line", self.path),
            )
        })
    }

    /// VmRSS in KiB: not on this system.
    #[cfg(not(target_os = "linux"))]
    pub fn kib(&mut self) -> io::Result<u64> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{}: needs Linux's /proc", self.path),
        ))
    }
}

/// The `VmRSS:` figure of a `/proc/PID/status` text, in KiB.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        line.strip_prefix("VmRSS:")?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_from_status() {
        let status = "Name:\tdemo\nVmPeak:\t  999 kB\nVmRSS:\t   12345 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_vm_rss(status), Some(12345));
        assert_eq!(parse_vm_rss("Name:\tzombie\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn own_rss_is_readable() {
        let mut r = RssReader::open(std::process::id()).unwrap();
        assert!(r.kib().unwrap() > 0);
        // A second reading re-reads from the start.
        assert!(r.kib().unwrap() > 0);
        assert!(rss_kib(std::process::id()) > 0);
    }
}
