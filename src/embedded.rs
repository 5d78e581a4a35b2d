//! The embedded default: where no PostgreSQL server answers and no `DATABASE_URL` is set, but
//! PostgreSQL is installed, the server runs a private cluster under `<data-dir>/pg`, so a fresh
//! machine needs nothing but the package. What a command started it stops when the command ends
//! (`Cluster`'s drop); a cluster that was already running is left as it was.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// Default port of the private cluster (loopback only).
pub const DEFAULT_PORT: u16 = 54329;

/// The private cluster, as this process found it.
#[derive(Debug)]
pub struct Cluster {
    pub url: String,
    data_dir: PathBuf,
    started_here: bool,
}

impl Cluster {
    /// Whether this process started it (and so stops it when done with it).
    pub fn started_here(&self) -> bool {
        self.started_here
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.started_here {
            match stop(&self.data_dir) {
                Ok(()) => tracing::info!("stopped the private PostgreSQL cluster"),
                Err(error) => tracing::warn!(%error, "cannot stop the private PostgreSQL cluster"),
            }
        }
    }
}

/// Starts (initialising on first use) the private cluster on `port`, unless it is running.
pub fn start(data_dir: &Path, port: u16) -> anyhow::Result<Cluster> {
    let bin = binaries().context("no PostgreSQL installation found (looked for pg_ctl)")?;
    std::fs::create_dir_all(data_dir)?;
    let data_dir = data_dir.canonicalize()?;
    let cluster = data_dir.join("pg");
    let as_root = is_root();
    if !cluster.join("PG_VERSION").exists() {
        std::fs::create_dir_all(&cluster)?;
        if as_root {
            // PostgreSQL refuses to run as root; the cluster belongs to the `postgres` user.
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&cluster))?;
        }
        let mut initdb = command(as_root, &bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&cluster)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"]);
        run(&mut initdb).context("initdb failed")?;
        tracing::info!(cluster = %cluster.display(), "initialised a private PostgreSQL cluster");
    }
    let mut status = command(as_root, &bin.join("pg_ctl"));
    status.arg("-D").arg(&cluster).arg("status");
    let running = status.output().map(|o| o.status.success()).unwrap_or(false);
    if !running {
        let mut pg_ctl = command(as_root, &bin.join("pg_ctl"));
        pg_ctl
            .arg("-D")
            .arg(&cluster)
            .arg("-o")
            .arg(format!(
                "-p {port} -c listen_addresses=127.0.0.1 -k {}",
                cluster.display()
            ))
            .arg("-l")
            .arg(cluster.join("server.log"))
            .args(["-w", "start"]);
        run(&mut pg_ctl).context("pg_ctl start failed")?;
        tracing::info!(port, "started the private PostgreSQL cluster");
    }
    Ok(Cluster {
        url: format!("postgres://postgres@127.0.0.1:{port}/openspp"),
        data_dir,
        started_here: !running,
    })
}

/// Stops the private cluster (fast shutdown: sessions end, data is safe).
pub fn stop(data_dir: &Path) -> anyhow::Result<()> {
    let bin = binaries().context("no PostgreSQL installation found (looked for pg_ctl)")?;
    let cluster = data_dir.canonicalize()?.join("pg");
    let mut pg_ctl = command(is_root(), &bin.join("pg_ctl"));
    pg_ctl
        .arg("-D")
        .arg(&cluster)
        .args(["-m", "fast", "-w", "stop"]);
    run(&mut pg_ctl).context("pg_ctl stop failed")
}

fn command(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command.output().context("cannot run a PostgreSQL tool")?;
    if !output.status.success() {
        bail!("{}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// The newest installed PostgreSQL's `bin` folder (Debian layout, then `PATH`).
fn binaries() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("pg_ctl").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop().or_else(|| {
        std::env::var_os("PATH")
            .and_then(|path| std::env::split_paths(&path).find(|dir| dir.join("pg_ctl").exists()))
    })
}
