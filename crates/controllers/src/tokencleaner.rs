//! The tokencleaner controller: deletes bootstrap token Secrets once they expire, and looks
//! again at each Secret when its expiration comes (the API server refuses an expired token
//! either way; this keeps `kinet token list` and kube-system tidy).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Secret;
use kinet_pki::token::{StoredToken, NAMESPACE, SECRET_TYPE};
use kube::api::DeleteParams;
use kube::runtime::controller::Action;
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, ResourceExt};

use crate::runtime::run_controller;

struct Ctx {
    client: Client,
}

/// What to do with a token Secret at `now`: delete it, or look again after the duration.
pub fn plan(secret: &serde_json::Value, now: DateTime<Utc>) -> Option<Duration> {
    let token = StoredToken::from_secret(secret)?;
    let expires = token.expires?;
    Some((expires - now).to_std().unwrap_or_default())
}

/// Runs the loop.
pub async fn run(client: Client) -> Result<(), crate::LoopError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let only_tokens = watcher::Config::default().fields(&format!("type={SECRET_TYPE}"));
    let controller = Controller::new(secrets, only_tokens);
    run_controller(
        "tokencleaner",
        controller,
        reconcile,
        Arc::new(Ctx { client }),
        Duration::from_secs(1),
    )
    .await;
    Ok(())
}

async fn reconcile(secret: Arc<Secret>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    let value = serde_json::to_value(secret.as_ref()).unwrap_or_default();
    match plan(&value, Utc::now()) {
        None => Ok(Action::await_change()),
        Some(left) if !left.is_zero() => Ok(Action::requeue(left)),
        Some(_) => {
            let api: Api<Secret> = Api::namespaced(ctx.client.clone(), NAMESPACE);
            match api
                .delete(&secret.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
            tracing::info!(secret = %secret.name_any(), "deleted an expired bootstrap token");
            Ok(Action::await_change())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinet_pki::token::{secret_object, JoinToken};

    #[test]
    fn expired_tokens_go_and_others_are_looked_at_when_they_expire() {
        let t = JoinToken::generate("ca");
        let now = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let later = secret_object(&t, Some(now + chrono::Duration::seconds(90)), None);
        assert_eq!(plan(&later, now), Some(Duration::from_secs(90)));
        let gone = secret_object(&t, Some(now - chrono::Duration::seconds(1)), None);
        assert_eq!(plan(&gone, now), Some(Duration::ZERO));
        assert_eq!(plan(&secret_object(&t, None, None), now), None);
        assert_eq!(plan(&serde_json::json!({"type": "Opaque"}), now), None);
    }
}
