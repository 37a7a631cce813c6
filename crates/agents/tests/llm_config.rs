//! The example `config/llm.yaml` parses, validates and builds a router; its keys stay secret.

use salesdept_agents::llm::{AgentName, LlmConfig, LlmRouter, ProviderKind, StructuredOutput};
use salesdept_events::{Store, Upcasters};

fn example() -> LlmConfig {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/llm.yaml");
    let text = std::fs::read_to_string(path).expect("config/llm.yaml exists");
    // What the server does before parsing: expand ${VAR} (here with a fixed value).
    let text = text
        .replace("${OPENAI_API_KEY}", "sk-example-openai-key")
        .replace("${ANTHROPIC_API_KEY}", "sk-ant-example-key");
    serde_yaml::from_str(&text).expect("config/llm.yaml parses")
}

#[test]
fn the_example_configuration_is_valid_and_every_agent_has_a_chain() {
    let config = example();
    config.validate().unwrap();
    for agent in AgentName::ALL {
        let chain = config.resolved_chain(agent).unwrap();
        assert!(!chain.is_empty(), "{agent} has no chain");
        assert!(
            config.agents[&agent].daily_budget.is_some(),
            "{agent} has no budget"
        );
    }
    let manager = config.resolved_chain(AgentName::SalesManager).unwrap();
    assert_eq!(
        config.providers[&manager[0].provider].kind,
        ProviderKind::Anthropic
    );
    assert_eq!(
        ProviderKind::Anthropic.default_structured_output(),
        StructuredOutput::Prompt,
        "Anthropic's compatibility endpoint ignores response_format"
    );
}

#[test]
fn the_example_keys_never_show_in_debug_output() {
    let config = example();
    let printed = format!("{config:?}");
    assert!(!printed.contains("sk-example-openai-key"), "{printed}");
    assert!(!printed.contains("sk-ant-example-key"), "{printed}");
    assert!(printed.contains("REDACTED"));
}

#[tokio::test]
async fn a_router_builds_from_the_example_without_any_network() {
    let directory = tempfile::TempDir::new().unwrap();
    let url = format!("sqlite://{}", directory.path().join("llm.sqlite").display());
    let store = Store::connect(&url, Upcasters::new()).await.unwrap();
    store.migrate().await.unwrap();
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();

    let router = LlmRouter::new(&example(), store, move || today).unwrap();

    assert_eq!(router.breakers().count(), 3);
    let printed = format!("{router:?}");
    assert!(!printed.contains("sk-example-openai-key") && !printed.contains("sk-ant-example-key"));
}
