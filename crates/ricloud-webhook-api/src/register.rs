//! Self-registration: a service makes sure, at start-up, that a webhook
//! config for its own URL exists and is `valid`, and gets its secret.

use std::time::Duration;

use ricloud_webhook::resources::WebhookConfigState;
use ricloud_webhook::Secret;

use futures_util::TryStreamExt as _;

use crate::client::Client;
use crate::endpoints::ConfigFilter;
use crate::error::ApiError;
use crate::resources::WebhookConfigWithSecret;

/// The webhook config of a service's own URL, found or created by
/// [`Client::register`].
///
/// ```no_run
/// use std::time::Duration;
/// use ricloud_webhook::{Dispatcher, Receiver, Verifier};
/// use ricloud_webhook_api::Client;
/// use ricloud_webhook_hyper::{serve, WebhookService};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::builder(std::env::var("RICLOUD_TOKEN")?).build()?;
/// // The config for this service's public URL, and its secret.
/// let registration = client.register("https://hooks.example.com/webhooks").await?;
/// let verifier = Verifier::new(registration.secret()?);
/// let service = WebhookService::new(Receiver::new(verifier, Dispatcher::new()));
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
/// let server = tokio::spawn(serve(listener, service, std::future::pending::<()>()));
/// // Now that the receiver answers, make sure the API sees it as valid.
/// registration.validate(&client, Duration::from_secs(60)).await?;
/// server.await??;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Registration {
    config: WebhookConfigWithSecret,
}

impl Client {
    /// Finds the config whose URL is `url` (any state but `deactivated`;
    /// a trailing `/` does not count), or creates one. Creating it starts
    /// the API's test at once, before the receiver is likely to answer;
    /// [`Registration::validate`] tests it again once it does.
    ///
    /// # Errors
    /// Those of the requests, and [`ApiError::Decode`] when the API sends
    /// the config without its secret.
    pub async fn register(&self, url: &str) -> Result<Registration, ApiError> {
        let wanted = url.trim_end_matches('/');
        let mut configs = self.webhook_configs(ConfigFilter::default());
        let mut found = None;
        while let Some(config) = configs.try_next().await? {
            if config.url.as_deref().map(|u| u.trim_end_matches('/')) == Some(wanted)
                && config.state != Some(WebhookConfigState::Deactivated)
            {
                found = Some(config);
                break;
            }
        }
        let config = match found {
            // A list may leave the secret out; the config itself holds it.
            Some(config) if config.secret.is_none() => {
                self.webhook_config(config.id.as_str()).await?
            }
            Some(config) => config,
            None => {
                let config = self.create_webhook_config(url).await?;
                tracing::info!(config = %config.id, "created a webhook config");
                config
            }
        };
        if config.secret.is_none() {
            return Err(ApiError::NoSecret {
                id: config.id.to_string(),
            });
        }
        Ok(Registration { config })
    }
}

impl Registration {
    /// The config as it was found or created.
    pub fn config(&self) -> &WebhookConfigWithSecret {
        &self.config
    }

    /// The secret to verify the config's events with.
    ///
    /// # Errors
    /// [`ricloud_webhook::SecretError`] when the API's secret is empty.
    pub fn secret(&self) -> Result<Secret, ricloud_webhook::SecretError> {
        match &self.config.secret {
            Some(secret) => secret.to_secret(),
            None => Secret::new(Vec::new()),
        }
    }

    /// Makes sure the config is `valid`: unless it already is, tests it
    /// (the receiver must be answering by now) and waits for the outcome.
    ///
    /// # Errors
    /// [`ApiError::NotValid`] when the test ends with the config in another
    /// state, [`ApiError::TestTimedOut`] after `timeout`, or those of the
    /// requests.
    pub async fn validate(
        &self,
        client: &Client,
        timeout: Duration,
    ) -> Result<WebhookConfigWithSecret, ApiError> {
        let id = self.config.id.as_str();
        let current = client.webhook_config(id).await?;
        if current.state == Some(WebhookConfigState::Valid) {
            return Ok(current);
        }
        let config = client.test_and_wait(id, timeout).await?;
        if config.state == Some(WebhookConfigState::Valid) {
            Ok(config)
        } else {
            Err(ApiError::NotValid {
                id: id.to_owned(),
                state: config.state_str().to_owned(),
            })
        }
    }
}
