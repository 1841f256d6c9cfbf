//! Secrets kept in files: a node's identity key survives restarts, so its node id does.

use std::io::Write;
use std::path::Path;

use protocol::Identity;

/// Loads a 32-byte secret from `path`, creating it (random, mode 0600, synced, renamed into
/// place) on first use.
pub fn load_or_create_secret(path: &Path) -> std::io::Result<[u8; 32]> {
    match std::fs::read(path) {
        Ok(bytes) => bytes.as_slice().try_into().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is not a 32-byte key", path.display()),
            )
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let secret: [u8; 32] = rand::random();
            write_private(path, &secret)?;
            Ok(secret)
        }
        Err(error) => Err(error),
    }
}

/// Writes `contents` to `path` readable by the user only (mode 0600 on Unix): to a temporary
/// name, synced, then renamed, so a crash leaves the old file or the new one, never half.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let temp = path.with_extension("tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
    }
    std::fs::rename(&temp, path)?;
    // The rename is durable only once the directory is: a key must not be lost to a crash
    // while what it protects (sealed content keys, say) survives.
    #[cfg(unix)]
    if let Some(parent) = path.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Creates `path` (and its parents) if needed and makes it private: mode 0700 on Unix, so
/// nothing inside is reachable by other users whatever its own mode.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o777 != 0o700 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// Entries [`restrict_tree`] visits at most (a database directory holds a handful).
pub const RESTRICT_ENTRIES_MAX: usize = 10_000;

/// Makes a directory tree private: directories 0700, files 0600 (Unix; elsewhere nothing).
/// For small trees such as a database's files; visits at most [`RESTRICT_ENTRIES_MAX`].
pub fn restrict_tree(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut pending = vec![path.to_path_buf()];
        let mut visited = 0usize;
        while let Some(next) = pending.pop() {
            visited += 1;
            if visited > RESTRICT_ENTRIES_MAX {
                break;
            }
            let metadata = std::fs::symlink_metadata(&next)?;
            if metadata.file_type().is_symlink() {
                continue;
            }
            let wanted = if metadata.is_dir() { 0o700 } else { 0o600 };
            if metadata.permissions().mode() & 0o777 != wanted {
                std::fs::set_permissions(&next, std::fs::Permissions::from_mode(wanted))?;
            }
            if metadata.is_dir() {
                for entry in std::fs::read_dir(&next)? {
                    pending.push(entry?.path());
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The node identity kept in `path` (created on first use).
pub fn load_or_create_identity(path: &Path) -> std::io::Result<Identity> {
    // A directory made for the key is private; an existing one (the user's) is left as it is.
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
        && !parent.exists()
    {
        create_private_dir(parent)?;
    }
    Ok(Identity::from_secret_bytes(&load_or_create_secret(path)?))
}

/// The address to advertise for a socket bound to `bound`: `bound` itself unless its IP is
/// unspecified (0.0.0.0 or ::), in which case the IP of the local interface that routes toward
/// `toward` (no packet is sent), with `bound`'s port.
pub fn advertised_addr(
    bound: std::net::SocketAddr,
    toward: std::net::SocketAddr,
) -> std::net::SocketAddr {
    if !bound.ip().is_unspecified() {
        return bound;
    }
    let any: std::net::SocketAddr = if toward.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    std::net::UdpSocket::bind(any)
        .and_then(|socket| {
            socket.connect(toward)?;
            socket.local_addr()
        })
        .map(|local| std::net::SocketAddr::new(local.ip(), bound.port()))
        .unwrap_or(bound)
}
