//! Host-wide claims on underlay subnets that outlive the host route.
//!
//! A running cluster's host route is its claim on the subnet. `kinet down --keep-data` removes
//! the route but keeps the cluster, which will ask for the same subnet at its next `up` (its
//! node addresses and certificates depend on it). Without a record, another cluster (another
//! `KINET_HOME` included) would take the free-looking subnet meanwhile, and the kept cluster
//! could not start again. So each cluster also writes a claim file naming its `cluster.json`;
//! a fresh `up` skips subnets whose claimant still records them. Files under `/run` vanish at
//! reboot, together with the routes they stand for.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use kinet_ipam::Ipv4Cidr;

use crate::state::ClusterInfo;

/// Where the claims live on this host.
pub const CLAIMS_DIR: &str = "/run/kinet/underlays";

fn claim_file(dir: &Path, cidr: Ipv4Cidr) -> PathBuf {
    dir.join(format!("{}-{}", cidr.network(), cidr.prefix()))
}

fn parse_claim_name(name: &str) -> Option<Ipv4Cidr> {
    let (ip, len) = name.rsplit_once('-')?;
    Ipv4Cidr::new(ip.parse().ok()?, len.parse().ok()?).ok()
}

/// Records that the cluster whose settings are in `cluster_json` holds `cidr`.
pub fn claim(dir: &Path, cidr: Ipv4Cidr, cluster_json: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(
        claim_file(dir, cidr),
        cluster_json.as_os_str().as_encoded_bytes(),
    )
}

/// Drops the claim on `cidr` if `cluster_json` is its claimant.
pub fn release(dir: &Path, cidr: Ipv4Cidr, cluster_json: &Path) -> std::io::Result<()> {
    let file = claim_file(dir, cidr);
    match fs::read(&file) {
        Ok(owner) if owner == cluster_json.as_os_str().as_encoded_bytes() => fs::remove_file(file),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The subnets claimed by clusters other than `own` that still exist and still record them.
/// Stale claims (a cluster deleted without `down`, or recreated on another subnet) are ignored.
pub fn held_by_others(dir: &Path, own: &Path) -> Vec<Ipv4Cidr> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let cidr = parse_claim_name(e.file_name().to_str()?)?;
            let owner = PathBuf::from(String::from_utf8(fs::read(e.path()).ok()?).ok()?);
            if owner == own {
                return None;
            }
            let info: ClusterInfo = serde_json::from_slice(&fs::read(&owner).ok()?).ok()?;
            (info.underlay == Some(cidr)).then_some(cidr)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    fn cluster(dir: &Path, name: &str, underlay: Option<&str>) -> PathBuf {
        let path = dir.join(format!("{name}.json"));
        let info = serde_json::json!({
            "name": name, "port": 6443, "created": "2026-01-01T00:00:00Z", "nodes": 1,
            "config": null, "underlay": underlay,
        });
        fs::write(&path, info.to_string()).unwrap();
        path
    }

    #[test]
    fn a_kept_cluster_keeps_its_subnet_from_others_but_not_from_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let claims = tmp.path().join("claims");
        let a = cluster(tmp.path(), "a", Some("172.18.0.0/16"));
        let b = cluster(tmp.path(), "b", None);
        claim(&claims, cidr("172.18.0.0/16"), &a).unwrap();
        assert_eq!(held_by_others(&claims, &b), vec![cidr("172.18.0.0/16")]);
        assert!(held_by_others(&claims, &a).is_empty());

        // Only the claimant releases.
        release(&claims, cidr("172.18.0.0/16"), &b).unwrap();
        assert_eq!(held_by_others(&claims, &b).len(), 1);
        release(&claims, cidr("172.18.0.0/16"), &a).unwrap();
        assert!(held_by_others(&claims, &b).is_empty());
    }

    #[test]
    fn stale_claims_hold_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let claims = tmp.path().join("claims");
        let own = tmp.path().join("own.json");
        // Its cluster was deleted without `down`.
        claim(
            &claims,
            cidr("172.19.0.0/16"),
            &tmp.path().join("gone.json"),
        )
        .unwrap();
        // Its cluster now records another subnet.
        let moved = cluster(tmp.path(), "moved", Some("172.21.0.0/16"));
        claim(&claims, cidr("172.20.0.0/16"), &moved).unwrap();
        // Not a claim at all.
        fs::write(claims.join("notes"), "x").unwrap();
        assert!(held_by_others(&claims, &own).is_empty());
        assert!(held_by_others(&tmp.path().join("absent"), &own).is_empty());
    }
}
