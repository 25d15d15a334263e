//! `kinet down`: stop the control plane and remove the cluster's state.

use std::fs;

use anyhow::{Context, Result};

use crate::process::{self, Stopped};
use crate::state::{self, ClusterDir};
use crate::up::absolute_home;

pub fn down(name: &str, keep_data: bool) -> Result<()> {
    state::validate_name(name)?;
    let dir = ClusterDir::new(&absolute_home()?, name);
    if !dir.root.exists() {
        println!("No cluster named \"{name}\"; nothing to do.");
        return Ok(());
    }
    match dir.read_pid() {
        Some(pid) => match process::stop(pid, name)? {
            Stopped::Terminated => eprintln!(" ✓ Stopped control plane (pid {pid})"),
            Stopped::Killed => eprintln!(" ✓ Killed control plane (pid {pid}), it ignored SIGTERM"),
            Stopped::NotRunning => eprintln!("   control plane was not running"),
        },
        None => eprintln!("   control plane was not running"),
    }
    dir.remove_pid()?;
    if keep_data {
        println!(
            "Cluster \"{name}\" stopped; state kept in {}",
            dir.root.display()
        );
    } else {
        fs::remove_dir_all(&dir.root)
            .with_context(|| format!("removing {}", dir.root.display()))?;
        println!("Cluster \"{name}\" deleted.");
    }
    Ok(())
}
