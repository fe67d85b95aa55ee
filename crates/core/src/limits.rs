//! Process resource limits terok raises for itself.

/// Lifts the soft limit on open files to the hard one. The vault holds connections from many
/// containers at once and the ownership walk holds a descriptor per directory level, where
/// the default soft limit (often 1024) is too low.
pub fn raise_open_file_limit() -> std::io::Result<()> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit)?;
    }
    Ok(())
}
