//! Pure renderers of the mails the department sends: the hand-over of a positive reply
//! and the daily report. Text from LinkedIn is untrusted: it is HTML-escaped in the HTML
//! part and stripped of control characters in the subject.

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use salesdept_events::domain::{Classification, Intent, LinkedInUrl, QualityScore, Sentiment};
use uuid::Uuid;

use super::{Mailbox, MessageId, OutgoingMail};

/// The envelope of a rendered mail: its caller-derived Message-ID, sender and recipients.
#[derive(Clone, Debug, PartialEq)]
pub struct MailHeaders {
    pub message_id: MessageId,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
}

/// Who wrote one turn of a conversation with a lead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Party {
    /// The department (an Outreach message, from this LinkedIn account).
    Us { account: String },
    /// The lead.
    Lead,
}

/// One message of the conversation with a lead, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationTurn {
    pub who: Party,
    pub text: String,
    pub at: DateTime<Utc>,
}

/// What a human needs to know about a lead at hand-over.
#[derive(Clone, Debug, PartialEq)]
pub struct LeadSummary {
    pub lead_id: Uuid,
    pub name: String,
    pub position: Option<String>,
    pub company: Option<String>,
    pub linkedin_url: LinkedInUrl,
    pub classification: Classification,
    pub quality_score: Option<QualityScore>,
    pub reply_intent: Intent,
    pub reply_sentiment: Sentiment,
}

/// The mail that hands a positive reply to a human: who the lead is, the whole
/// conversation, and the suggested next step.
pub fn positive_reply_mail(
    headers: MailHeaders,
    lead: &LeadSummary,
    conversation: &[ConversationTurn],
    suggested_next_step: &str,
) -> OutgoingMail {
    let facts = lead_facts(lead);
    let speaker = |who: &Party| match who {
        Party::Us { account } => format!("Us ({account})"),
        Party::Lead => lead.name.clone(),
    };

    let mut text = format!(
        "{} replied to our outreach ({}, {}) and is ready for a human.\n\nLead\n",
        lead.name, lead.reply_intent, lead.reply_sentiment
    );
    for (label, value) in &facts {
        let _ = writeln!(text, "  {label}: {value}");
    }
    let _ = write!(
        text,
        "\nSuggested next step\n  {suggested_next_step}\n\nConversation\n"
    );
    if conversation.is_empty() {
        text.push_str("  (no messages recorded)\n");
    }
    for turn in conversation {
        let _ = writeln!(
            text,
            "  [{}] {}:\n{}",
            timestamp(turn.at),
            speaker(&turn.who),
            indent(&turn.text, "    ")
        );
    }

    let mut html = format!(
        "<!DOCTYPE html>\n<html><body>\n<p><strong>{}</strong> replied to our outreach \
         ({}, {}) and is ready for a human.</p>\n<h3>Lead</h3>\n<table>\n",
        escape_html(&lead.name),
        lead.reply_intent,
        lead.reply_sentiment
    );
    for (label, value) in &facts {
        let cell = if *label == "LinkedIn" {
            format!("<a href=\"{0}\">{0}</a>", escape_html(value))
        } else {
            escape_html(value)
        };
        let _ = writeln!(
            html,
            "<tr><th align=\"left\">{label}</th><td>{cell}</td></tr>"
        );
    }
    let _ = write!(
        html,
        "</table>\n<h3>Suggested next step</h3>\n<p>{}</p>\n<h3>Conversation</h3>\n",
        escape_html(suggested_next_step)
    );
    if conversation.is_empty() {
        html.push_str("<p><em>No messages recorded.</em></p>\n");
    }
    for turn in conversation {
        let _ = writeln!(
            html,
            "<p><small>{}</small> <strong>{}</strong><br>{}</p>",
            timestamp(turn.at),
            escape_html(&speaker(&turn.who)),
            escape_html(&turn.text).replace('\n', "<br>\n")
        );
    }
    html.push_str("</body></html>\n");

    let mut subject = format!(
        "Positive reply: {} ({}, {})",
        lead.name, lead.classification, lead.reply_intent
    );
    if let Some(company) = &lead.company {
        let _ = write!(subject, " at {company}");
    }

    OutgoingMail {
        message_id: headers.message_id,
        from: headers.from,
        to: headers.to,
        subject: clean_subject(&subject),
        text,
        html: Some(html),
    }
}

/// The daily report mail: the Markdown report as the text part and its HTML rendering as
/// the alternative (wrapped in a document if it is a fragment).
pub fn daily_report_mail(
    headers: MailHeaders,
    report_date: NaiveDate,
    markdown: &str,
    html: &str,
) -> OutgoingMail {
    let html = if html.to_ascii_lowercase().contains("<html") {
        html.to_owned()
    } else {
        format!("<!DOCTYPE html>\n<html><body>\n{html}\n</body></html>\n")
    };
    OutgoingMail {
        message_id: headers.message_id,
        from: headers.from,
        to: headers.to,
        subject: format!("Daily sales report for {}", report_date.format("%Y-%m-%d")),
        text: markdown.to_owned(),
        html: Some(html),
    }
}

fn lead_facts(lead: &LeadSummary) -> Vec<(&'static str, String)> {
    let mut facts = vec![("Name", lead.name.clone())];
    if let Some(position) = &lead.position {
        facts.push(("Position", position.clone()));
    }
    if let Some(company) = &lead.company {
        facts.push(("Company", company.clone()));
    }
    facts.push(("LinkedIn", lead.linkedin_url.to_string()));
    facts.push(("Classification", lead.classification.to_string()));
    if let Some(score) = lead.quality_score {
        facts.push(("Quality score", score.to_string()));
    }
    facts.push((
        "Reply",
        format!("{} ({})", lead.reply_intent, lead.reply_sentiment),
    ));
    facts.push(("Lead ID", lead.lead_id.to_string()));
    facts
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines()
        .map(|line| format!("{prefix}{line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A subject is one line: control characters (a CR/LF from a profile name, say) become
/// spaces so no text can add a header.
fn clean_subject(subject: &str) -> String {
    let cleaned: String = subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(crate) fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn headers() -> MailHeaders {
        MailHeaders {
            message_id: MessageId::for_event(Uuid::nil(), "salesdept.test").unwrap(),
            from: "Sales Dept <sales@salesdept.test>".parse().unwrap(),
            to: vec!["Team <team@example.com>".parse().unwrap()],
        }
    }

    fn lead() -> LeadSummary {
        LeadSummary {
            lead_id: Uuid::from_u128(7),
            name: "Ada <Lovelace>".to_owned(),
            position: Some("CTO".to_owned()),
            company: Some("Analytical & Co".to_owned()),
            linkedin_url: LinkedInUrl::parse("https://www.linkedin.com/in/ada-lovelace").unwrap(),
            classification: Classification::Speaker,
            quality_score: Some(QualityScore::parse(8.5).unwrap()),
            reply_intent: Intent::Interested,
            reply_sentiment: Sentiment::Positive,
        }
    }

    fn conversation() -> Vec<ConversationTurn> {
        vec![
            ConversationTurn {
                who: Party::Us {
                    account: "primary".to_owned(),
                },
                text: "Would you speak at DeepTech Summit?".to_owned(),
                at: Utc.with_ymd_and_hms(2026, 11, 20, 10, 3, 0).unwrap(),
            },
            ConversationTurn {
                who: Party::Lead,
                text: "Yes, gladly!\nSend me <details>.".to_owned(),
                at: Utc.with_ymd_and_hms(2026, 11, 21, 8, 30, 0).unwrap(),
            },
        ]
    }

    #[test]
    fn given_a_positive_reply_when_rendered_then_both_parts_carry_lead_conversation_and_next_step()
    {
        let mail =
            positive_reply_mail(headers(), &lead(), &conversation(), "Book a 20-minute call");

        assert_eq!(mail.message_id, headers().message_id);
        assert_eq!(
            mail.subject,
            "Positive reply: Ada <Lovelace> (Speaker, Interested) at Analytical & Co"
        );
        for expected in [
            "CTO",
            "https://www.linkedin.com/in/ada-lovelace",
            "Quality score: 8.5",
            "Book a 20-minute call",
            "[2026-11-20 10:03 UTC] Us (primary):",
            "    Would you speak at DeepTech Summit?",
            "[2026-11-21 08:30 UTC] Ada <Lovelace>:",
            "    Send me <details>.",
            &Uuid::from_u128(7).to_string(),
        ] {
            assert!(
                mail.text.contains(expected),
                "text lacks {expected:?}:\n{}",
                mail.text
            );
        }
        let html = mail.html.expect("an HTML part");
        for expected in [
            "<strong>Ada &lt;Lovelace&gt;</strong>",
            "Analytical &amp; Co",
            "Yes, gladly!<br>\nSend me &lt;details&gt;.",
            "Book a 20-minute call",
        ] {
            assert!(html.contains(expected), "html lacks {expected:?}:\n{html}");
        }
        assert!(
            !html.contains("<details>"),
            "untrusted text must be escaped"
        );
    }

    #[test]
    fn given_a_name_with_a_line_break_when_rendered_then_the_subject_stays_one_line() {
        let mut lead = lead();
        lead.name = "Eve\r\nBcc: attacker@example.com".to_owned();
        lead.company = None;
        let mail = positive_reply_mail(headers(), &lead, &[], "Call");
        assert_eq!(
            mail.subject,
            "Positive reply: Eve Bcc: attacker@example.com (Speaker, Interested)"
        );
        assert!(mail.text.contains("(no messages recorded)"));
    }

    #[test]
    fn given_a_report_fragment_when_rendered_then_it_is_wrapped_and_the_markdown_is_the_text() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        let mail = daily_report_mail(headers(), date, "# Report\n- 42 sent", "<h1>Report</h1>");
        assert_eq!(mail.subject, "Daily sales report for 2026-11-24");
        assert_eq!(mail.text, "# Report\n- 42 sent");
        let html = mail.html.unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<h1>Report</h1>"));

        let whole = "<html><body><p>x</p></body></html>";
        let mail = daily_report_mail(headers(), date, "x", whole);
        assert_eq!(mail.html.as_deref(), Some(whole));
    }
}
