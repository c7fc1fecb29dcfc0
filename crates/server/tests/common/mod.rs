//! A SCIM server on loopback for integration tests: a fresh SQLite store
//! in a temp dir, one connection with a token, a channel sink to observe
//! inbound changes, and a small JSON client.

#![allow(dead_code)]

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use roster_server::{
    ChannelSink, ScimChange, ScimConfig, ScimState, scim_router, scim_serve_options, serve_with,
    tokens,
};
use roster_store::Store;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

pub const CONN: &str = "acme-okta";
pub const SCIM_JSON: &str = "application/scim+json";

pub struct TestServer {
    /// `http://127.0.0.1:PORT/scim/v2/acme-okta`
    pub base: String,
    pub origin: String,
    pub token: String,
    pub token_prefix: String,
    pub store: Store,
    /// The store's SQLite file.
    pub db_path: std::path::PathBuf,
    pub changes: mpsc::UnboundedReceiver<ScimChange>,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

/// A response, decoded.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Asserts an RFC 7644 §3.12 error with this status and scimType.
    pub fn assert_error(&self, status: u16, scim_type: Option<&str>) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(
            self.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
            "{}",
            self.body
        );
        assert_eq!(self.body["status"], status.to_string(), "{}", self.body);
        assert_eq!(
            self.body.get("scimType").and_then(Value::as_str),
            scim_type,
            "{}",
            self.body
        );
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with(SCIM_JSON)),
            "error content-type: {:?}",
            self.header("content-type")
        );
    }
}

pub async fn start() -> TestServer {
    start_with(ScimConfig::default()).await
}

pub async fn start_with(config: ScimConfig) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let db_path = dir.path().join("roster.db");
    let store = Store::open(db_path.to_str().expect("utf-8"))
        .await
        .expect("open store");
    start_on(store, dir, db_path, config).await
}

/// A server over a store the caller opened (e.g. on PostgreSQL); `dir` is
/// kept alive with the server.
pub async fn start_on(
    store: Store,
    dir: tempfile::TempDir,
    db_path: std::path::PathBuf,
    config: ScimConfig,
) -> TestServer {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let created = tokens::create_token(&store, CONN, "test", 1)
        .await
        .expect("token");
    let (sink, changes) = ChannelSink::new();
    let options = scim_serve_options(&config);
    let state = ScimState::with_config(store.clone(), sink, config);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    // As `roster serve` does: the outer body cap follows the SCIM config.
    let task = tokio::spawn(serve_with(
        listener,
        scim_router(state),
        async move {
            let _ = rx.await;
        },
        options,
    ));
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("client");
    TestServer {
        base: format!("http://{addr}/scim/v2/{CONN}"),
        origin: format!("http://{addr}"),
        token_prefix: created.info.prefix.clone(),
        token: created.token,
        store,
        db_path,
        changes,
        http,
        stop: Some(tx),
        task: Some(task),
        _dir: dir,
    }
}

impl TestServer {
    /// Sends a request with the connection's token to `path` (relative to
    /// the connection base, e.g. `/Users`, or absolute if it starts with
    /// `http`).
    pub async fn req(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.req_h(method, path, body, &[]).await
    }

    pub async fn req_h(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let mut rb = self
            .http
            .request(method, url)
            .header("Authorization", format!("Bearer {}", self.token));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb
                .header("Content-Type", SCIM_JSON)
                .body(serde_json::to_vec(&b).expect("json"));
        }
        let r = rb.send().await.expect("request");
        Self::decode(r).await
    }

    /// A raw request: no token unless given in `headers`, body as bytes.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.body(body).send().await.expect("request");
        Self::decode(r).await
    }

    async fn decode(r: reqwest::Response) -> Resp {
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{status}: body is not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.req(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.req(Method::POST, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.req(Method::PUT, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.req(Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Resp {
        self.req(Method::DELETE, path, None).await
    }

    /// Creates a user and returns its id.
    pub async fn create_user(&self, user_name: &str) -> String {
        let r = self.post("/Users", user_body(user_name)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["id"].as_str().expect("id").to_string()
    }

    /// Everything the sink received so far.
    pub fn drain_changes(&mut self) -> Vec<ScimChange> {
        let mut out = Vec::new();
        while let Ok(c) = self.changes.try_recv() {
            out.push(c);
        }
        out
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task").expect("serve");
        }
        self.store.close().await;
    }
}

/// A user body shaped like Okta's create request.
pub fn user_body(user_name: &str) -> Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": "Barbara Jensen",
        "externalId": format!("ext-{user_name}"),
        "active": true
    })
}

/// A filter query string value, percent-encoded.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Make Arc visible for tests that build sinks.
pub type SharedSink = Arc<ChannelSink>;
