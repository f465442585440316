//! The client side of the control plane API, shared by proxies and operators' commands.

use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::NODE_HEADER;
use super::auth::Token;

#[derive(Clone, Debug)]
pub struct Api {
    base: String,
    token: Token,
    node: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// An answer: status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    /// The body as text, for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim().to_string()
    }
}

impl Api {
    /// A client of the control plane at `url` (`http://host:port`, optionally with a path
    /// prefix). TLS to the control plane is not supported yet.
    pub fn new(url: &str, token: Token, node: Option<String>) -> Result<Api, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("control plane URL {url:?}: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(format!(
                    "control plane URL {url:?}: https is not supported yet; use http:// on a trusted network"
                ));
            }
            _ => {
                return Err(format!(
                    "control plane URL {url:?}: must start with http://"
                ));
            }
        }
        if uri.authority().is_none() {
            return Err(format!("control plane URL {url:?}: no host"));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_nodelay(true);
        Ok(Api {
            base: url.trim_end_matches('/').to_string(),
            token,
            node,
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends one request; `timeout` bounds the whole exchange.
    pub async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Bytes,
        content_type: &str,
        timeout: Duration,
    ) -> Result<Answer, String> {
        let url = format!("{}{path_and_query}", self.base);
        let mut req = Request::builder()
            .method(method)
            .uri(&url)
            .header(AUTHORIZATION, self.token.bearer())
            .header(CONTENT_TYPE, content_type);
        if let Some(node) = &self.node {
            req = req.header(NODE_HEADER, node);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| format!("{url}: {e}"))?;
        let exchange = async {
            let res = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("{url}: {}", crate::error::chain(&e)))?;
            let status = res.status().as_u16();
            let body = res
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("{url}: reading the answer: {e}"))?
                .to_bytes();
            Ok(Answer { status, body })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| format!("{url}: no answer within {timeout:?}"))?
    }

    pub async fn get(&self, path: &str, timeout: Duration) -> Result<Answer, String> {
        self.call(Method::GET, path, Bytes::new(), "application/json", timeout)
            .await
    }

    pub async fn post_json(
        &self,
        path: &str,
        value: &impl serde::Serialize,
    ) -> Result<Answer, String> {
        let body = serde_json::to_vec(value).map_err(|e| e.to_string())?;
        self.call(
            Method::POST,
            path,
            Bytes::from(body),
            "application/json",
            Duration::from_secs(30),
        )
        .await
    }
}
