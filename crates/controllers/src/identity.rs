//! Each loop's own credentials, as kube-controller-manager's `--use-service-account-credentials`
//! gives each controller a client of its own: the loops run in the API server's process, so
//! each identity of [`kinet_rbac::controllers`] gets a random bearer token that lives only in
//! memory. The server authenticates it like any static token and RBAC decides, so a loop can
//! do no more than its role grants.

use std::collections::HashMap;

use rand::distr::{Alphanumeric, SampleString};

use crate::client::{connect, ConnectError};

/// One identity's token.
#[derive(Debug, Clone)]
pub struct Credential {
    pub user: String,
    pub groups: Vec<String>,
    pub token: String,
}

/// A fresh token for every control-plane identity.
pub fn generate() -> Vec<Credential> {
    kinet_rbac::controllers::identities()
        .into_iter()
        .map(|(user, groups)| Credential {
            user,
            groups,
            token: Alphanumeric.sample_string(&mut rand::rng(), 48),
        })
        .collect()
}

/// A client per identity, by user name.
#[derive(Clone)]
pub struct Clients(HashMap<String, kube::Client>);

impl Clients {
    /// Clients for `url` trusting only `ca_pem`, one per credential.
    pub fn connect(
        url: &str,
        ca_pem: &str,
        credentials: &[Credential],
    ) -> Result<Clients, ConnectError> {
        let clients = credentials
            .iter()
            .map(|c| Ok((c.user.clone(), connect(url, ca_pem, &c.token)?)))
            .collect::<Result<_, ConnectError>>()?;
        Ok(Clients(clients))
    }

    /// The client of the controller whose service account is `kube-system:<name>`.
    pub fn controller(&self, name: &str) -> kube::Client {
        self.user(&kinet_rbac::controllers::user(name))
    }

    /// The scheduler's client (`system:kube-scheduler`).
    pub fn scheduler(&self) -> kube::Client {
        self.user(kinet_rbac::controllers::SCHEDULER)
    }

    fn user(&self, user: &str) -> kube::Client {
        // Every loop's identity is one of `kinet_rbac::controllers::identities()`.
        self.0
            .get(user)
            .unwrap_or_else(|| panic!("no credentials for {user}: it has no bootstrap role"))
            .clone()
    }
}
