//! The few pages the gate shows itself: plain HTML, no script, every text escaped.

/// `s` safe in HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{t} - RStudio sign-in</title>\
<style>body{{font-family:sans-serif;max-width:34em;margin:4em auto;padding:0 1em;color:#222}}\
h1{{font-size:1.4em}}button{{font-size:1em;padding:.4em 1.2em}}</style></head>\
<body><h1 id=\"title\">{t}</h1>{body}</body></html>\n",
        t = escape(title)
    )
}

/// A page with a title and one sentence.
pub fn message(title: &str, text: &str) -> String {
    layout(title, &format!("<p id=\"message\">{}</p>", escape(text)))
}

pub fn logout_form(action: &str) -> String {
    layout(
        "Sign out",
        &format!(
            "<p>Sign out of RStudio on this server?</p>\
<form method=\"post\" action=\"{}\"><button id=\"sign-out\" type=\"submit\">Sign out</button></form>",
            escape(action)
        ),
    )
}

pub fn signed_out(again: &str) -> String {
    layout(
        "Signed out",
        &format!(
            "<p id=\"message\">You are signed out of RStudio. Your identity provider's own session (Google, for instance) is not ended.</p>\
<p><a id=\"sign-in\" href=\"{}\">Sign in again</a></p>",
            escape(again)
        ),
    )
}
