//! `/livez`, `/readyz` and `/healthz` over HTTPS: the server's own checks pass, and a failing
//! check registered from outside turns the endpoints 500, named in the verbose text.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http_body_util::BodyExt;
use kinet_apiserver::{Checks, Endpoint};
use kinet_testkit::TestApi;

async fn get(client: &kube::Client, path: &str) -> (u16, String) {
    let req = http::Request::get(path).body(Vec::new()).unwrap();
    let resp = client.send(req.map(Into::into)).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn a_failing_check_turns_the_endpoints_500_naming_it() {
    let checks = Checks::default();
    let broken = Arc::new(AtomicBool::new(false));
    let flag = broken.clone();
    checks.add("controller/deployment", Endpoint::Live, move || {
        let broken = flag.load(Ordering::SeqCst);
        Box::pin(async move {
            match broken {
                true => Err("the loop exited".to_string()),
                false => Ok(()),
            }
        })
    });
    let api = TestApi::start_with(checks).await.unwrap();
    let client = api.client().unwrap();

    assert_eq!(get(&client, "/readyz").await, (200, "ok".to_string()));
    assert_eq!(
        get(&client, "/readyz?verbose").await,
        (
            200,
            "[+]controller/deployment ok\n[+]ping ok\n[+]etcd ok\n[+]watch-cache ok\n\
             readyz check passed\n"
                .to_string()
        )
    );
    assert_eq!(
        get(&client, "/livez?verbose").await.1,
        "[+]controller/deployment ok\n[+]ping ok\n[+]etcd ok\nlivez check passed\n",
        "watch-cache is a readiness check only"
    );
    assert_eq!(get(&client, "/readyz/etcd").await, (200, "ok".to_string()));

    broken.store(true, Ordering::SeqCst);
    for endpoint in ["livez", "readyz", "healthz"] {
        let (status, body) = get(&client, &format!("/{endpoint}")).await;
        assert_eq!(status, 500, "{endpoint}");
        assert!(
            body.contains("[-]controller/deployment failed: reason withheld\n"),
            "{endpoint}: {body}"
        );
        assert!(body.contains("[+]etcd ok\n"), "{endpoint}: {body}");
        assert!(
            body.ends_with(&format!("{endpoint} check failed\n")),
            "{endpoint}: {body}"
        );
    }
    assert_eq!(
        get(&client, "/readyz/controller/deployment").await,
        (500, "internal server error: the loop exited\n".to_string())
    );
    let (status, body) = get(&client, "/readyz?exclude=controller/deployment&verbose").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("[+]controller/deployment excluded: ok\n"),
        "{body}"
    );
    assert_eq!(get(&client, "/readyz/no-such-check").await.0, 404);
}
