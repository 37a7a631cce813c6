//! Schema evolution of the domain's events: the upcasters a store must be opened with.

use serde_json::{Map, Value};

use super::values::LinkedInUrl;
use crate::upcast::Upcasters;

/// Every upcaster of the sales domain. Open stores with these (merged with any others).
pub fn upcasters() -> Upcasters {
    Upcasters::new().register("lead_discovered", 1, lead_discovered_v1_to_v2)
}

/// Personal fields version 1 of `lead_discovered` kept at the top level.
const V1_PERSONAL_FIELDS: [&str; 7] = [
    "name",
    "linkedin_url",
    "headline",
    "about",
    "location",
    "recent_activity",
    "email",
];

/// `lead_discovered` version 1 (the seed's shape: `name` and `linkedin_url` at the top level,
/// no URL hash, no source) becomes version 2: the personal fields move into `pii`, the URL is
/// normalised and hashed, and the source defaults to `search`.
fn lead_discovered_v1_to_v2(mut data: Value) -> Result<Value, String> {
    let object = data
        .as_object_mut()
        .ok_or_else(|| "lead_discovered v1 must be a JSON object".to_owned())?;
    let mut pii = match object.remove("pii") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(pii)) => pii,
        Some(_) => return Err("pii must be an object".to_owned()),
    };
    for field in V1_PERSONAL_FIELDS {
        match object.remove(field) {
            None | Some(Value::Null) => {}
            Some(value) => {
                pii.entry(field).or_insert(value);
            }
        }
    }
    if let Some(text) = pii.get("linkedin_url").cloned() {
        let text = text.as_str().ok_or("linkedin_url must be a string")?;
        let url = LinkedInUrl::parse(text).map_err(|error| error.to_string())?;
        object
            .entry("url_hash")
            .or_insert_with(|| Value::from(url.hash()));
        pii.insert("linkedin_url".to_owned(), Value::from(url.as_str()));
    } else if !object.contains_key("url_hash") {
        return Err("lead_discovered v1 has neither linkedin_url nor url_hash".to_owned());
    }
    object
        .entry("source")
        .or_insert_with(|| Value::from("search"));
    object.insert("pii".to_owned(), Value::Object(pii));
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn version_one_moves_personal_fields_into_pii() {
        let v1 = json!({
            "lead_id": "0192f0c1-0000-7000-8000-000000000001",
            "name": "Maya Lindqvist",
            "linkedin_url": "http://LinkedIn.com/in/Maya-Lindqvist-D1/",
            "position": "CTO",
            "company": "Fjordbyte",
        });
        let v2 = lead_discovered_v1_to_v2(v1).unwrap();
        let url = LinkedInUrl::parse("linkedin.com/in/maya-lindqvist-d1").unwrap();
        assert_eq!(v2["pii"]["name"], "Maya Lindqvist");
        assert_eq!(v2["pii"]["linkedin_url"], url.as_str());
        assert_eq!(v2["url_hash"], url.hash());
        assert_eq!(v2["source"], "search");
        assert_eq!(v2["position"], "CTO");
        assert!(v2.get("name").is_none() && v2.get("linkedin_url").is_none());
    }

    #[test]
    fn broken_version_one_bodies_are_refused() {
        for (body, why) in [
            (json!([1, 2]), "not an object"),
            (json!({"name": "x"}), "no URL"),
            (
                json!({"linkedin_url": "https://example.com/in/x"}),
                "not LinkedIn",
            ),
            (json!({"linkedin_url": 42}), "not a string"),
        ] {
            assert!(lead_discovered_v1_to_v2(body).is_err(), "{why}");
        }
    }
}
