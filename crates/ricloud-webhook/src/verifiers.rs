//! The webhook configs a receiver serves: one, or several by name, each
//! with its own secrets on its own path.

use std::fmt;
use std::sync::Arc;

use crate::Verifier;

/// The secrets a [`Receiver`](crate::Receiver) accepts, by webhook config.
///
/// - **One config** (`From<Verifier>`, what [`Receiver::queued`](crate::Receiver::queued)
///   and the others take when given a [`Verifier`]): deliveries arrive at
///   `<prefix>/<event id>`.
/// - **Several configs** ([`Verifiers::named`]): each has a name and is
///   delivered to at `<prefix>/<name>/<event id>`, and its secrets are
///   accepted there only: one config's secret on another's path is refused
///   like any wrong signature (401). The name is the event's
///   [`Event::config`](crate::Event::config), what a durable store records
///   and what metrics and logs say.
///
/// An API key without a webhook config of its own is served by its
/// organisation's default config; a key with its own config gets its own
/// secret. A service receiving for several keys registers each config's
/// URL with its name in the path:
///
/// ```
/// use ricloud_webhook::{Dispatcher, Receiver, Secret, Verifier, Verifiers};
///
/// let verifiers = Verifiers::named()
///     .config("default", Verifier::new(Secret::new("secret of the default config")?))?
///     .config("billing", Verifier::new(Secret::new("secret of the billing key's config")?))?;
/// // https://hooks.example.com/webhooks/default and .../webhooks/billing
/// let receiver = Receiver::new(verifiers, Dispatcher::new());
/// assert_eq!(receiver.verifiers().names().collect::<Vec<_>>(), ["default", "billing"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Verifiers(Kind);

#[derive(Clone)]
enum Kind {
    One(Verifier),
    Named(Vec<(Arc<str>, Verifier)>),
}

/// Why a webhook config's name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigNameError {
    /// The name is not 1 to 64 ASCII letters, digits, `-` or `_`.
    #[error(
        "webhook config name {0:?} must be 1 to 64 ASCII letters, digits, `-` or `_` (it is a path segment and a metrics label)"
    )]
    Invalid(String),
    /// Two configs have the same name.
    #[error("webhook config name {0:?} is given twice")]
    Repeated(String),
}

impl Verifiers {
    /// The longest config name accepted.
    pub const MAX_NAME_LEN: usize = 64;

    /// No config yet: add each with [`config`](Self::config).
    pub fn named() -> Self {
        Self(Kind::Named(Vec::new()))
    }

    /// Adds the config `name`, delivered to at `<prefix>/<name>/<event id>`.
    ///
    /// # Errors
    /// [`ConfigNameError`] for a name that is not a plain path segment, or
    /// one given twice.
    ///
    /// # Panics
    /// When called on [`Verifiers`] made from one [`Verifier`] (a
    /// programming error: start from [`Verifiers::named`]).
    pub fn config(mut self, name: &str, verifier: Verifier) -> Result<Self, ConfigNameError> {
        let valid = (1..=Self::MAX_NAME_LEN).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(ConfigNameError::Invalid(name.to_owned()));
        }
        let Kind::Named(configs) = &mut self.0 else {
            panic!("Verifiers::config: start from Verifiers::named(), not one Verifier");
        };
        if configs.iter().any(|(n, _)| &**n == name) {
            return Err(ConfigNameError::Repeated(name.to_owned()));
        }
        configs.push((Arc::from(name), verifier));
        Ok(self)
    }

    /// Whether the configs are named (several configs, or one on a named path).
    pub fn is_named(&self) -> bool {
        matches!(self.0, Kind::Named(_))
    }

    /// The config names, in the order they were added; none for one
    /// unnamed config.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let named: &[(Arc<str>, Verifier)] = match &self.0 {
            Kind::Named(configs) => configs,
            Kind::One(_) => &[],
        };
        named.iter().map(|(name, _)| &**name)
    }

    /// The verifier for a delivery to `path`, and its config's name:
    /// `None` when the path names no config this receiver serves.
    pub(crate) fn for_path(&self, path: &str) -> Option<(Option<&Arc<str>>, &Verifier)> {
        match &self.0 {
            Kind::One(verifier) => Some((None, verifier)),
            Kind::Named(configs) => {
                let name = config_from_path(path)?;
                configs
                    .iter()
                    .find(|(n, _)| &**n == name)
                    .map(|(n, v)| (Some(n), v))
            }
        }
    }
}

impl From<Verifier> for Verifiers {
    fn from(verifier: Verifier) -> Self {
        Self(Kind::One(verifier))
    }
}

/// The segment before the event id: `a` in `/webhooks/a/<id>` (a trailing
/// slash tolerated).
fn config_from_path(path: &str) -> Option<&str> {
    let path = path.strip_suffix('/').unwrap_or(path);
    let (rest, _id) = path.rsplit_once('/')?;
    let (_, name) = rest.rsplit_once('/')?;
    (!name.is_empty()).then_some(name)
}

impl fmt::Debug for Verifiers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::One(verifier) => f.debug_tuple("Verifiers").field(verifier).finish(),
            Kind::Named(configs) => f
                .debug_map()
                .entries(configs.iter().map(|(n, v)| (n, v)))
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

    fn verifier() -> Verifier {
        Verifier::new(Secret::new("s").expect("a secret"))
    }

    #[test]
    fn names_are_plain_path_segments_given_once() {
        let named = Verifiers::named()
            .config("a-1_B", verifier())
            .expect("valid");
        assert!(matches!(
            named.clone().config("a-1_B", verifier()),
            Err(ConfigNameError::Repeated(_))
        ));
        for bad in ["", "a/b", "a.b", "ä", "..", &"x".repeat(65)] {
            assert!(
                matches!(
                    Verifiers::named().config(bad, verifier()),
                    Err(ConfigNameError::Invalid(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_path_selects_its_config_only() {
        let named = Verifiers::named()
            .config("a", verifier())
            .and_then(|v| v.config("b", verifier()))
            .expect("valid");
        let name = |path| named.for_path(path).map(|(n, _)| n.map(|n| n.to_string()));
        assert_eq!(name("/webhooks/a/e1"), Some(Some("a".to_owned())));
        assert_eq!(name("/webhooks/b/e1/"), Some(Some("b".to_owned())));
        assert_eq!(name("/webhooks/c/e1"), None);
        assert_eq!(name("/webhooks/e1"), None);
        assert_eq!(name("/e1"), None);
        let one = Verifiers::from(verifier());
        assert!(one
            .for_path("/webhooks/e1")
            .is_some_and(|(n, _)| n.is_none()));
    }
}
