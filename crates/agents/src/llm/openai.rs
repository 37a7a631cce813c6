//! The production LLM adapter: async-openai against any OpenAI-compatible base URL (OpenAI,
//! Anthropic's compatibility endpoint, OpenRouter, Ollama, vLLM, llama.cpp…), every call
//! through the [`Resilience`] policy.
//!
//! async-openai's own executor retries 429s and 5xx by itself and drops `Retry-After` from the
//! error it returns. So the client is given our own HTTP service instead: it sends each
//! request once and turns any non-2xx answer into an [`HttpFailure`] that keeps the status,
//! `Retry-After` and the server's error message; retrying is the policy's alone.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::{OpenAIError, WrappedError};
use async_openai::middleware::HttpRequestFactory;
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage,
    ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
    CreateChatCompletionRequest, CreateChatCompletionRequestArgs, ResponseFormat,
    ResponseFormatJsonSchema,
};
use secrecy::{ExposeSecret, SecretString};

use super::config::{LlmConfigError, ProviderConfig, ProviderKind, StructuredOutput};
use super::prompt::strict_schema;
use crate::resilience::{
    CallError, Classify, FailureClass, Resilience, ResilienceConfig, parse_retry_after,
};

/// How long to wait for a TCP (and TLS) connection before calling the attempt failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an error body is kept in an error message.
const MAX_ERROR_MESSAGE: usize = 500;

/// One message of a chat request.
#[derive(Clone, Debug, PartialEq)]
pub enum ChatMessage {
    System(String),
    User(String),
    Assistant(String),
}

/// A chat request for a JSON answer.
#[derive(Clone, Debug)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub schema_name: String,
    pub schema: serde_json::Value,
}

/// The model's reply and what it cost.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatReply {
    /// The message text (a refusal's text when the model refused; empty when it said nothing).
    pub content: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// HTTP attempts it took, retries included.
    pub http_attempts: u32,
}

/// Why a chat call failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The server answered with an error status.
    #[error("HTTP {status}: {message}")]
    Status {
        status: u16,
        retry_after: Option<Duration>,
        /// The error's `code` or `type` (e.g. `rate_limit_exceeded`, `insufficient_quota`).
        code: Option<String>,
        message: String,
    },
    /// No answer: the connection failed or broke.
    #[error("connection failed: {0}")]
    Connection(String),
    /// The server answered 2xx with something that is not a chat completion.
    #[error("unexpected response: {0}")]
    InvalidResponse(String),
    /// The request could not be built.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl Classify for ProviderError {
    fn class(&self) -> FailureClass {
        match self {
            // A 429 for an exhausted quota will not pass by waiting.
            Self::Status {
                code: Some(code), ..
            } if code == "insufficient_quota" => FailureClass::Permanent,
            Self::Status {
                status,
                retry_after,
                ..
            } => FailureClass::from_http_status(*status, *retry_after),
            Self::Connection(_) => FailureClass::TRANSIENT,
            Self::InvalidResponse(_) | Self::InvalidRequest(_) => FailureClass::Permanent,
        }
    }
}

/// A non-2xx answer, carried through async-openai as a boxed middleware error.
#[derive(Debug, thiserror::Error)]
#[error("HTTP {status}: {message}")]
struct HttpFailure {
    status: u16,
    retry_after: Option<Duration>,
    code: Option<String>,
    message: String,
}

/// Sends each request once; a non-2xx answer becomes an [`HttpFailure`].
#[derive(Clone)]
struct SendOnce {
    http: reqwest::Client,
}

impl tower::Service<HttpRequestFactory> for SendOnce {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = Pin<Box<dyn Future<Output = Result<reqwest::Response, OpenAIError>> + Send>>;

    fn poll_ready(&mut self, _context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        let http = self.http.clone();
        Box::pin(async move {
            let request = factory.build().await?;
            let response = http.execute(request).await.map_err(OpenAIError::Reqwest)?;
            if response.status().is_success() {
                return Ok(response);
            }
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| parse_retry_after(value, SystemTime::now()));
            let body = response.bytes().await.unwrap_or_default();
            let (code, message) = match serde_json::from_slice::<WrappedError>(&body) {
                Ok(wrapped) => (
                    wrapped.error.code.or(wrapped.error.r#type),
                    wrapped.error.message,
                ),
                Err(_) => (None, String::from_utf8_lossy(&body).into_owned()),
            };
            Err(OpenAIError::Boxed(Box::new(HttpFailure {
                status,
                retry_after,
                code,
                message: truncate(message.trim(), MAX_ERROR_MESSAGE),
            })))
        })
    }
}

/// One configured provider: an async-openai client with its own resilience policy.
pub struct OpenAiCompatible {
    name: String,
    kind: ProviderKind,
    base_url: String,
    structured_output: StructuredOutput,
    client: Client<OpenAIConfig>,
    /// Kept to scrub it from error messages (a server may echo the key it was sent).
    api_key: Option<SecretString>,
    resilience: Resilience,
}

impl fmt::Debug for OpenAiCompatible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiCompatible")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("structured_output", &self.structured_output)
            .field("client", &self.client)
            .field("resilience", &self.resilience)
            .finish()
    }
}

impl OpenAiCompatible {
    /// The client of provider `name`; its circuit breaker is named `llm:<name>`.
    pub fn new(
        name: &str,
        config: &ProviderConfig,
        resilience: &ResilienceConfig,
    ) -> Result<Self, LlmConfigError> {
        let mut openai = OpenAIConfig::new().with_api_base(config.base_url.trim_end_matches('/'));
        // OpenAIConfig::new() reads OPENAI_API_KEY; always replace it, so each provider uses
        // only its own configured key (none for a local server).
        openai = openai.with_api_key(
            config
                .api_key
                .as_ref()
                .map(|key| key.expose_secret().to_owned())
                .unwrap_or_default(),
        );
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|error| LlmConfigError::HttpClient {
                provider: name.to_owned(),
                message: error.to_string(),
            })?;
        let client = Client::with_config(openai)
            .with_http_client(http.clone())
            .with_http_service(SendOnce { http });
        Ok(Self {
            name: name.to_owned(),
            kind: config.kind,
            base_url: config.base_url.clone(),
            structured_output: config
                .structured_output
                .unwrap_or_else(|| config.kind.default_structured_output()),
            client,
            api_key: config
                .api_key
                .clone()
                .filter(|key| !key.expose_secret().is_empty()),
            resilience: Resilience::new(format!("llm:{name}"), resilience.clone()),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    pub fn resilience(&self) -> &Resilience {
        &self.resilience
    }

    /// Sends the request through the resilience policy.
    #[tracing::instrument(
        skip_all,
        fields(
            provider = %self.name,
            model = %request.model,
            prompt_tokens = tracing::field::Empty,
            completion_tokens = tracing::field::Empty,
            attempts = tracing::field::Empty
        ),
        err
    )]
    pub async fn chat(&self, request: &ChatRequest) -> Result<ChatReply, CallError<ProviderError>> {
        let body = self
            .build_request(request)
            .map_err(|source| CallError::Failed {
                service: self.resilience.service().to_owned(),
                attempts: 0,
                source,
            })?;
        let attempts = AtomicU32::new(0);
        let attempts = &attempts;
        let reply = self
            .resilience
            .call(|| {
                let body = body.clone();
                async move {
                    attempts.fetch_add(1, Ordering::Relaxed);
                    let response = self
                        .client
                        .chat()
                        .create(body)
                        .await
                        .map_err(|error| self.scrub(provider_error(error)))?;
                    let usage = response.usage.as_ref();
                    let message = response
                        .choices
                        .into_iter()
                        .next()
                        .map(|choice| choice.message);
                    let content = message
                        .and_then(|message| message.content.or(message.refusal))
                        .unwrap_or_default();
                    Ok(ChatReply {
                        content,
                        prompt_tokens: usage.map_or(0, |usage| usage.prompt_tokens),
                        completion_tokens: usage.map_or(0, |usage| usage.completion_tokens),
                        http_attempts: attempts.load(Ordering::Relaxed),
                    })
                }
            })
            .await;
        let span = tracing::Span::current();
        span.record("attempts", attempts.load(Ordering::Relaxed));
        if let Ok(reply) = &reply {
            span.record("prompt_tokens", reply.prompt_tokens);
            span.record("completion_tokens", reply.completion_tokens);
        }
        reply
    }

    /// The error with every occurrence of this provider's API key replaced.
    fn scrub(&self, error: ProviderError) -> ProviderError {
        let Some(key) = &self.api_key else {
            return error;
        };
        let scrub = |text: String| text.replace(key.expose_secret(), "[REDACTED]");
        match error {
            ProviderError::Status {
                status,
                retry_after,
                code,
                message,
            } => ProviderError::Status {
                status,
                retry_after,
                code: code.map(scrub),
                message: scrub(message),
            },
            ProviderError::Connection(message) => ProviderError::Connection(scrub(message)),
            ProviderError::InvalidResponse(message) => {
                ProviderError::InvalidResponse(scrub(message))
            }
            ProviderError::InvalidRequest(message) => ProviderError::InvalidRequest(scrub(message)),
        }
    }

    /// The request as this kind of server wants it.
    fn build_request(
        &self,
        request: &ChatRequest,
    ) -> Result<CreateChatCompletionRequest, ProviderError> {
        let messages: Vec<ChatCompletionRequestMessage> = request
            .messages
            .iter()
            .map(|message| match message {
                ChatMessage::System(text) => {
                    ChatCompletionRequestSystemMessage::from(text.as_str()).into()
                }
                ChatMessage::User(text) => {
                    ChatCompletionRequestUserMessage::from(text.as_str()).into()
                }
                ChatMessage::Assistant(text) => {
                    ChatCompletionRequestAssistantMessage::from(text.as_str()).into()
                }
            })
            .collect();
        let mut args = CreateChatCompletionRequestArgs::default();
        args.model(request.model.clone()).messages(messages);
        if let Some(temperature) = request.temperature {
            args.temperature(temperature.clamp(0.0, self.kind.max_temperature()));
        }
        if let Some(max_tokens) = request.max_tokens {
            if self.kind.uses_max_completion_tokens() {
                args.max_completion_tokens(max_tokens);
            } else {
                #[allow(deprecated)]
                args.max_tokens(max_tokens);
            }
        }
        match self.structured_output {
            StructuredOutput::JsonSchema => match strict_schema(&request.schema) {
                Some(schema) => {
                    args.response_format(ResponseFormat::JsonSchema {
                        json_schema: ResponseFormatJsonSchema {
                            description: None,
                            name: request.schema_name.clone(),
                            schema,
                            strict: Some(true),
                        },
                    });
                }
                // A schema strict mode cannot take: JSON mode, with the schema in the prompt.
                None => {
                    args.response_format(ResponseFormat::JsonObject);
                }
            },
            StructuredOutput::JsonObject => {
                args.response_format(ResponseFormat::JsonObject);
            }
            StructuredOutput::Prompt => {}
        }
        args.build()
            .map_err(|error| ProviderError::InvalidRequest(error.to_string()))
    }
}

fn provider_error(error: OpenAIError) -> ProviderError {
    match error {
        OpenAIError::Boxed(boxed) => match boxed.downcast::<HttpFailure>() {
            Ok(failure) => ProviderError::Status {
                status: failure.status,
                retry_after: failure.retry_after,
                code: failure.code,
                message: failure.message,
            },
            Err(other) => ProviderError::Connection(other.to_string()),
        },
        OpenAIError::Reqwest(error) => match error.class() {
            FailureClass::Transient { .. } => {
                ProviderError::Connection(error.without_url().to_string())
            }
            FailureClass::Permanent => {
                ProviderError::InvalidResponse(error.without_url().to_string())
            }
        },
        OpenAIError::ApiError(api) => ProviderError::Status {
            status: api.status_code.as_u16(),
            retry_after: None,
            code: api.api_error.code.clone().or(api.api_error.r#type.clone()),
            message: truncate(&api.api_error.message, MAX_ERROR_MESSAGE),
        },
        OpenAIError::JSONDeserialize(error, content) => ProviderError::InvalidResponse(format!(
            "{error}: {}",
            truncate(&content, MAX_ERROR_MESSAGE)
        )),
        OpenAIError::InvalidArgument(message) => ProviderError::InvalidRequest(message),
        other => ProviderError::InvalidResponse(truncate(&other.to_string(), MAX_ERROR_MESSAGE)),
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}
