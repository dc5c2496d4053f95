//! The process's file descriptors and the bounds the listener holds connections to.

use std::time::Duration;

use vigia_http::listener::ConnectionLimits;

use crate::config::HttpSection;

/// Raises the soft limit on open files to the hard limit (every connection is a file
/// descriptor) and returns it; `None` where it cannot be read.
pub fn raise_open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => Some(limit),
            Err(error) => {
                tracing::warn!(%error, "cannot read or raise the open-file limit");
                rlimit::getrlimit(rlimit::Resource::NOFILE)
                    .ok()
                    .map(|(soft, _)| soft)
            }
        }
    }
    #[cfg(not(unix))]
    None
}

/// The `[http]` timeouts and connection cap; `max_connections = 0` takes seven eighths of
/// `open_files`, leaving the rest to the database, object storage and logs.
pub fn limits(http: &HttpSection, open_files: Option<u64>) -> ConnectionLimits {
    let secs = |secs: u64| (secs > 0).then(|| Duration::from_secs(secs));
    let max_connections = match (http.max_connections, open_files) {
        (0, Some(files)) => usize::try_from(files / 8 * 7).unwrap_or(usize::MAX).max(1),
        (0, None) => ConnectionLimits::default().max_connections,
        (set, _) => set,
    };
    ConnectionLimits {
        header_read_timeout: secs(http.header_read_timeout_secs),
        idle_timeout: secs(http.idle_timeout_secs),
        max_connections,
    }
}
