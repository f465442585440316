//! Tokens for the control plane API: read from a file or an environment variable, sent as
//! `authorization: Bearer <token>`, compared in constant time.

use std::path::Path;

/// A secret token.
#[derive(Clone)]
pub struct Token(Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// Tokens shorter than this are refused: they could be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

impl Token {
    /// The token in `file` (surrounding whitespace removed), else in the environment
    /// variable `env`. What is missing or too short is named in the error.
    pub fn load(file: Option<&Path>, env: &str, what: &str) -> Result<Token, String> {
        let text = match file {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("{what} token file {}: {e}", path.display()))?,
            None => std::env::var(env)
                .map_err(|_| format!("no {what} token: give a token file or set {env}"))?,
        };
        Token::new(text.trim(), what)
    }

    pub fn new(text: &str, what: &str) -> Result<Token, String> {
        if text.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "the {what} token is shorter than {MIN_TOKEN_LEN} characters"
            ));
        }
        Ok(Token(text.as_bytes().to_vec()))
    }

    /// The `authorization` header value that carries this token.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", String::from_utf8_lossy(&self.0))
    }

    /// Whether an `authorization` header value carries this token. Takes the same time
    /// whatever the position of the first differing byte.
    pub fn matches(&self, authorization: Option<&[u8]>) -> bool {
        let Some(given) = authorization.and_then(|v| v.strip_prefix(b"Bearer ")) else {
            return false;
        };
        constant_time_eq(given, &self.0)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // The length is not secret (and a length mismatch cannot be hidden anyway); the bytes
    // are all compared.
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_match_exactly() {
        let token = Token::new("0123456789abcdef", "push").unwrap();
        assert!(token.matches(Some(b"Bearer 0123456789abcdef")));
        assert!(!token.matches(Some(b"Bearer 0123456789abcdeF")));
        assert!(!token.matches(Some(b"Bearer 0123456789abcde")));
        assert!(!token.matches(Some(b"0123456789abcdef")));
        assert!(!token.matches(None));
        assert!(
            Token::new("short", "push")
                .unwrap_err()
                .contains("shorter than 16")
        );
    }
}
