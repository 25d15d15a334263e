//! A container registry on loopback for tests: the distribution API's pull side (`/v2/`,
//! manifests with their `Content-Type` and `Docker-Content-Digest`, blobs), optionally
//! behind a Bearer token that a `/token` endpoint hands out for a user name and password,
//! the challenge-and-token flow Docker Hub uses.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;

use crate::oci::Image;

const TOKEN: &str = "kinet-test-registry-token";

#[derive(Default)]
struct Content {
    /// (repository, tag or digest) → (media type, bytes).
    manifests: HashMap<(String, String), (String, Vec<u8>)>,
    blobs: HashMap<String, Vec<u8>>,
    blob_requests: usize,
}

struct Shared {
    content: Mutex<Content>,
    /// When set, requests need the token that `/token` gives for these credentials.
    credentials: Option<(String, String)>,
    addr: SocketAddr,
}

/// A running registry; dropping it stops it.
pub struct Registry {
    shared: Arc<Shared>,
    task: tokio::task::AbortHandle,
    _runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Registry {
    /// Serves on a free loopback port, anonymous pulls allowed.
    pub async fn start() -> Registry {
        Registry::start_with(None, None).await
    }

    /// Serves pulls only to clients with the token `/token` gives for `user`/`password`.
    pub async fn start_with_auth(user: &str, password: &str) -> Registry {
        Registry::start_with(Some((user.into(), password.into())), None).await
    }

    /// For tests without a runtime of their own: the registry runs on its own.
    pub fn start_blocking() -> Registry {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let handle = runtime.handle().clone();
        handle.block_on(Registry::start_with(None, Some(runtime)))
    }

    async fn start_with(
        credentials: Option<(String, String)>,
        runtime: Option<tokio::runtime::Runtime>,
    ) -> Registry {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let shared = Arc::new(Shared {
            content: Mutex::default(),
            credentials,
            addr: listener.local_addr().expect("bound"),
        });
        let app = Router::new()
            .route("/token", get(token))
            .route("/v2/", get(root))
            .route("/v2/{*path}", get(serve).head(serve))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Registry {
            shared,
            task: task.abort_handle(),
            _runtime: runtime,
        }
    }

    /// `127.0.0.1:<port>`, the registry part of image references.
    pub fn host(&self) -> String {
        self.shared.addr.to_string()
    }

    /// Makes `image` pullable as `<host>/<repository>:<tag>`.
    pub fn push(&self, repository: &str, tag: &str, image: &Image) {
        for blob in image.blobs() {
            self.put_blob(&blob.digest, blob.bytes.clone());
        }
        let m = &image.manifest;
        self.put_manifest(repository, tag, &m.media_type, m.bytes.clone());
    }

    /// Serves `bytes` for a manifest reference (tag or digest) and under its own digest.
    pub fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: Vec<u8>,
    ) {
        let mut c = self.shared.content.lock().expect("registry lock");
        let digest = crate::oci::digest(&bytes);
        for r in [reference.to_string(), digest] {
            c.manifests
                .insert((repository.into(), r), (media_type.into(), bytes.clone()));
        }
    }

    /// Serves `bytes` as the blob `digest` (which tests may make wrong on purpose).
    pub fn put_blob(&self, digest: &str, bytes: Vec<u8>) {
        let mut c = self.shared.content.lock().expect("registry lock");
        c.blobs.insert(digest.into(), bytes);
    }

    /// How many blob downloads were served.
    pub fn blob_requests(&self) -> usize {
        self.shared
            .content
            .lock()
            .expect("registry lock")
            .blob_requests
    }
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    shared.credentials.is_none()
        || headers
            .get(header::AUTHORIZATION)
            .is_some_and(|v| v.as_bytes() == format!("Bearer {TOKEN}").as_bytes())
}

fn challenge(shared: &Shared, scope: &str) -> Response {
    let value = format!(
        "Bearer realm=\"http://{}/token\",service=\"kinet-test\",scope=\"{scope}\"",
        shared.addr
    );
    let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, value)],
        body,
    )
        .into_response()
}

fn not_found(code: &str, what: &str) -> Response {
    let body = format!(r#"{{"errors":[{{"code":"{code}","message":"{what} unknown"}}]}}"#);
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

async fn root(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !authorized(&shared, &headers) {
        return challenge(&shared, "");
    }
    (StatusCode::OK, "{}").into_response()
}

async fn token(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some((user, password)) = &shared.credentials else {
        return (StatusCode::OK, format!(r#"{{"token":"{TOKEN}"}}"#)).into_response();
    };
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let given = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    if given != Some(format!("Basic {expected}").into_bytes()) {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"details":"incorrect username or password"}"#,
        )
            .into_response();
    }
    (
        StatusCode::OK,
        format!(r#"{{"token":"{TOKEN}","access_token":"{TOKEN}"}}"#),
    )
        .into_response()
}

/// `/v2/<repository>/manifests/<reference>` and `/v2/<repository>/blobs/<digest>`.
async fn serve(
    State(shared): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    Path(path): Path<String>,
) -> Response {
    let (repository, kind, reference) = match path.rsplit_once("/manifests/") {
        Some((repo, r)) => (repo, "manifests", r),
        None => match path.rsplit_once("/blobs/") {
            Some((repo, r)) => (repo, "blobs", r),
            None => return not_found("NAME_UNKNOWN", "path"),
        },
    };
    if !authorized(&shared, &headers) {
        return challenge(&shared, &format!("repository:{repository}:pull"));
    }
    let mut c = shared.content.lock().expect("registry lock");
    let (media_type, bytes) = if kind == "manifests" {
        match c
            .manifests
            .get(&(repository.to_string(), reference.to_string()))
        {
            Some((t, b)) => (t.clone(), b.clone()),
            None => return not_found("MANIFEST_UNKNOWN", "manifest"),
        }
    } else {
        match c.blobs.get(reference) {
            Some(b) => ("application/octet-stream".to_string(), b.clone()),
            None => return not_found("BLOB_UNKNOWN", "blob"),
        }
    };
    if kind == "blobs" && method == Method::GET {
        c.blob_requests += 1;
    }
    let digest = if kind == "manifests" {
        crate::oci::digest(&bytes)
    } else {
        reference.to_string()
    };
    let len = bytes.len();
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    Response::builder()
        .header(header::CONTENT_TYPE, media_type)
        .header(header::CONTENT_LENGTH, len)
        .header("Docker-Content-Digest", digest)
        .body(body)
        .expect("a response")
}
