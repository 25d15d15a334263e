//! `kinet down` against a control plane that ignores SIGTERM, and against a PID that
//! belongs to some other process.
//!
//! The stand-in control plane is perl (always installed on Debian) run through a
//! symlink named `kinet` with a script file named `serve`, so its command line reads
//! exactly `.../kinet serve --name NAME` like the real one.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::harness::{control_plane_running, kinet, show, stdout, temp_home, unique_name};

const STUBBORN: &str = r#"
$SIG{TERM} = 'IGNORE';
open(my $f, '>', 'ready') or die; close($f);
sleep 60;
"#;

/// Starts the stand-in in `work` and waits until it has set its signal handling.
fn spawn_stubborn(work: &Path, name: &str) -> Child {
    fs::create_dir_all(work.join("bin")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/perl", work.join("bin/kinet")).unwrap();
    fs::write(work.join("serve"), STUBBORN).unwrap();
    let child = Command::new(work.join("bin/kinet"))
        .args(["serve", "--name", name])
        .current_dir(work)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !work.join("ready").exists() {
        assert!(Instant::now() < deadline, "stand-in did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// A state folder with just the PID file, which is all `down` needs.
fn fake_state(home: &Path, name: &str, pid: u32) {
    let root = home.join(name);
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("control-plane.pid"), format!("{pid}\n")).unwrap();
}

/// Kills and reaps the child if a failed assertion left it running.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn down_kills_a_control_plane_that_ignores_sigterm() {
    let home = temp_home();
    let name = unique_name();
    let work = home.path().join("stand-in");
    let mut child = Reap(spawn_stubborn(&work, &name));
    assert!(control_plane_running(&name), "stand-in not recognised");
    fake_state(home.path(), &name, child.0.id());

    let started = Instant::now();
    let out = kinet(home.path(), &["down", "--name", &name]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "no grace period"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Killed"),
        "{}",
        show(&out)
    );
    let status = child.0.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "{status:?}");
    assert!(!home.path().join(&name).exists());
}

#[test]
fn down_never_signals_a_reused_pid() {
    let home = temp_home();
    let name = unique_name();
    // The PID file points at a live process that is not our control plane.
    let mut other = Reap(Command::new("sleep").arg("30").spawn().unwrap());
    fake_state(home.path(), &name, other.0.id());

    let out = kinet(home.path(), &["down", "--name", &name, "--keep-data"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(other.0.try_wait().unwrap().is_none(), "sleep was signalled");
    assert!(stdout(&out).contains("state kept"), "{}", show(&out));
    assert!(home.path().join(&name).exists());
    assert!(!home.path().join(&name).join("control-plane.pid").exists());
}
