//! Longest-prefix routing on `proxy.listen_path`, built once per generation.

use std::sync::Arc;

use moongate_config::ApiDefinition;

/// The listen paths of one generation, longest first.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Arc<ApiDefinition>>,
}

impl Router {
    pub fn new(apis: &[Arc<ApiDefinition>]) -> Self {
        let mut routes = apis.to_vec();
        routes.sort_by(|a, b| {
            b.listen_path.len().cmp(&a.listen_path.len()).then_with(|| a.listen_path.cmp(&b.listen_path))
        });
        Self { routes }
    }

    /// The API whose listen path is the longest prefix of `path`. A listen path `/orders/` also
    /// takes `/orders` itself.
    pub fn route(&self, path: &str) -> Option<&Arc<ApiDefinition>> {
        self.routes.iter().find(|api| matches(&api.listen_path, path))
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

fn matches(listen_path: &str, path: &str) -> bool {
    if let Some(rest) = path.strip_prefix(listen_path) {
        // `/orders` must not take `/ordersx`: the match ends at a segment boundary.
        return listen_path.ends_with('/') || rest.is_empty() || rest.starts_with('/') || rest.starts_with('?');
    }
    listen_path.len() > 1 && listen_path.ends_with('/') && path == &listen_path[..listen_path.len() - 1]
}

/// The path sent upstream when the listen path is stripped: what follows it, always starting `/`.
pub fn strip_listen_path<'a>(listen_path: &str, path: &'a str) -> std::borrow::Cow<'a, str> {
    let trimmed = listen_path.trim_end_matches('/');
    let rest = path.strip_prefix(trimmed).unwrap_or(path);
    if rest.starts_with('/') { rest.into() } else { format!("/{rest}").into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_boundaries() {
        let cases = [
            ("/orders/", "/orders/1", true),
            ("/orders/", "/orders", true),
            ("/orders/", "/ordersx", false),
            ("/orders", "/orders/1", true),
            ("/orders", "/orders", true),
            ("/orders", "/ordersx", false),
            ("/", "/anything", true),
        ];
        for (lp, path, want) in cases {
            assert_eq!(matches(lp, path), want, "{lp} vs {path}");
        }
    }

    #[test]
    fn stripping() {
        let cases = [
            ("/orders/", "/orders/1/2", "/1/2"),
            ("/orders/", "/orders", "/"),
            ("/orders/", "/orders/", "/"),
            ("/orders", "/orders/x", "/x"),
            ("/", "/x", "/x"),
        ];
        for (lp, path, want) in cases {
            assert_eq!(strip_listen_path(lp, path), want, "{lp} vs {path}");
        }
    }
}
