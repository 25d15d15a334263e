//! The HTTPS front door: accepts connections, authenticates, and routes non-resource paths
//! (health, version, discovery, OpenAPI) itself and resource paths to [`crate::rest`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{header, Method, Request};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use kinet_types::ApiError;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

use kinet_rbac::UserInfo;

use crate::auth;
use crate::authz;
use crate::discovery;
use crate::http::{bytes_reply, error_reply, json_reply, Query, Reply};
use crate::impersonate;
use crate::join;
use crate::openapi;
use crate::path::{self, Route};
use crate::rest::Api;
use crate::reviews;

/// Accepts TLS connections on one address until the task is dropped.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, api: Arc<Api>) {
    let conn = move |tls: TlsStream<TcpStream>, peer: SocketAddr| {
        let api = api.clone();
        async move {
            // Read once per connection: the user for authorization, the serial for revocation,
            // which is checked on every request.
            let (cert_user, cert_serial) = match tls.get_ref().1.peer_certificates() {
                Some([cert, ..]) => (
                    auth::certificate_user(cert).map(Arc::new),
                    Some(Arc::<str>::from(
                        kinet_pki::csr::serial_of(cert).unwrap_or_default(),
                    )),
                ),
                _ => (None, None),
            };
            let service = service_fn(move |req| {
                let api = api.clone();
                let (cert_user, serial) = (cert_user.clone(), cert_serial.clone());
                async move {
                    let cert = cert_user.as_deref().zip(serial.as_deref());
                    Ok::<_, Infallible>(handle(api, cert, peer, req).await)
                }
            });
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        }
    };
    kinet_tls_server::serve("api", listener, tls, std::future::pending(), conn).await
}

async fn handle(
    api: Arc<Api>,
    cert: Option<(&UserInfo, &str)>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Reply {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    // Bootstrap tokens are looked up only when no static token matches (a union authenticator).
    let bearer = authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !api.tokens.iter().any(|u| u.token == *t));
    let bootstrap = match bearer.map(|t| join::authenticate(&api.store, t)) {
        Some(Err(e)) => return error_reply(&e),
        Some(Ok(user)) => user,
        None => None,
    };
    // Then service-account tokens (asked here, as the lookup may wait for the cache).
    let service_account = match (&bootstrap, bearer) {
        (None, Some(token)) => api.service_account_user(token).await,
        _ => None,
    };
    let cert_user = cert.map(|(user, _)| user);
    let user = match bootstrap
        .or_else(|| auth::authenticate(cert_user, authorization, &api.tokens, |_| service_account))
    {
        Some(auth::User::Certificate(_))
            if cert.is_some_and(|(_, serial)| join::revoked(&api.store, serial)) =>
        {
            return error_reply(&ApiError::unauthorized())
        }
        Some(user) if user.is_authenticated() || auth::is_public(&path) => user,
        _ => return error_reply(&ApiError::unauthorized()),
    };
    let user = match impersonate::apply(&api, user.info(), req.headers()) {
        Ok(user) => user,
        Err(e) => return error_reply(&e),
    };
    let reply = route(&api, &user, req).await;
    tracing::debug!(%peer, %method, %path, status = reply.status().as_u16(), elapsed = ?started.elapsed(), "request");
    reply
}

async fn route(api: &Arc<Api>, user: &UserInfo, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_string();
    let get = req.method() == Method::GET;
    let review = reviews::route(&path);
    let lookup = |g: &str, v: &str, p: &str| api.crds.lookup(g, v, p);
    let resource = path::route_with(&path, &lookup);
    let attributes = match (&review, &resource) {
        (Some(r), _) => r.attributes(),
        (None, Some(Route::Resource(target))) => {
            authz::resource_attributes(req.method(), target, &Query::parse(req.uri().query()))
        }
        _ => authz::path_attributes(req.method(), &path),
    };
    if !api.authz.authorize(&api.store, user, &attributes).allowed() {
        // Refusals are rare and usually a missing rule; say who was refused what.
        tracing::warn!(user = %user.name, groups = ?user.groups, verb = %attributes.verb,
            resource = %attributes.combined_resource(), group = %attributes.api_group,
            namespace = %attributes.namespace, name = %attributes.name, path = %path, "forbidden");
        return error_reply(&authz::forbidden(user, &attributes));
    }
    if let Some(review) = review {
        return review.serve(api, user, req).await;
    }
    if let Some((endpoint, check)) =
        kinet_health::split_path(&path, &["healthz", "livez", "readyz"]).filter(|_| get)
    {
        let query = kinet_health::Query::parse(req.uri().query());
        return match api.health.report(endpoint, check, &query).await {
            Some(r) => bytes_reply(r.status, "text/plain; charset=utf-8", r.body),
            None => error_reply(&ApiError::no_route()),
        };
    }
    match path.as_str() {
        "/version" | "/version/" if get => return json_reply(200, &discovery::version()),
        join::CACERTS_PATH if get => {
            return bytes_reply(
                200,
                "text/plain; charset=utf-8",
                api.ca_pem.clone().into_bytes(),
            )
        }
        "/metrics" if get => {
            let text = api.metrics.as_ref().map(|m| (m.0)()).unwrap_or_default();
            return bytes_reply(200, "text/plain; version=0.0.4; charset=utf-8", text);
        }
        "/openapi/v3" | "/openapi/v3/" if get => {
            let docs = api.crds.documents();
            let custom: Vec<(&str, &str)> = docs
                .iter()
                .map(|d| (d.path.as_str(), d.hash.as_str()))
                .collect();
            return json_reply(200, &openapi::index(&custom));
        }
        "/openapi/v2" | "/openapi/v2/" if get => {
            let protobuf = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains(openapi::V2_PROTOBUF_ACCEPT));
            let media = if protobuf {
                openapi::V2_PROTOBUF
            } else {
                "application/json"
            };
            return bytes_reply(200, media, openapi::v2_document(protobuf));
        }
        _ => {}
    }
    if let Some(gv) = path.strip_prefix("/openapi/v3/") {
        if let Some(doc) = openapi::group_version(gv).filter(|_| get) {
            return bytes_reply(200, "application/json", doc);
        }
        let docs = api.crds.documents();
        return match docs.iter().find(|d| d.path == gv.trim_matches('/')) {
            Some(doc) if get => bytes_reply(200, "application/json", doc.body.clone()),
            _ => error_reply(&ApiError::no_route()),
        };
    }
    let Some(route) = resource else {
        return error_reply(&ApiError::no_route());
    };
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let custom = api.crds.resources();
    match route {
        Route::Root { legacy } if get => {
            if accept.contains("as=APIGroupDiscoveryList") {
                bytes_reply(
                    200,
                    discovery::AGGREGATED_V2,
                    serde_json::to_vec(&discovery::aggregated(legacy, &custom)).unwrap_or_default(),
                )
            } else if legacy {
                json_reply(200, &discovery::api_versions(&api.server_address))
            } else {
                json_reply(200, &discovery::api_group_list(&custom))
            }
        }
        Route::Group { group } if get => match discovery::group(&group, &custom) {
            Some(doc) => json_reply(200, &doc),
            None => error_reply(&ApiError::no_route()),
        },
        Route::GroupVersion { group, version } if get => {
            match discovery::resource_list(&group, &version, &custom) {
                Some(doc) => json_reply(200, &doc),
                None => error_reply(&ApiError::no_route()),
            }
        }
        Route::Resource(target) => {
            let query = Query::parse(req.uri().query());
            api.handle(user, target, query, req).await
        }
        Route::Root { .. } | Route::Group { .. } | Route::GroupVersion { .. } => {
            error_reply(&ApiError::method_not_allowed(req.method().as_str(), &path))
        }
        Route::Unknown => error_reply(&ApiError::no_route()),
    }
}
