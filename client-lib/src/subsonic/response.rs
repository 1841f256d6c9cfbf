//! Subsonic answers as one tree, written as XML (the default) or JSON (`f=json`).
//!
//! The two encodings differ in ways clients depend on: in XML every field is an attribute and
//! a list is repeated elements; in JSON numbers and booleans are typed, a list is an array
//! under the element's name (even with one item or none), and text content is `value`. A
//! [`Node`] records which children are lists so both come out right.

use std::fmt::Write as _;

/// The Subsonic API version spoken.
pub const API_VERSION: &str = "1.16.1";

/// The XML namespace of Subsonic answers.
pub const XMLNS: &str = "http://subsonic.org/restapi";

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// True or false.
    Bool(bool),
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Text(text.to_string())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::Text(text)
    }
}

impl From<&String> for Value {
    fn from(text: &String) -> Self {
        Value::Text(text.clone())
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Value::Bool(value)
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Value::Float(value)
    }
}

impl From<f32> for Value {
    fn from(value: f32) -> Self {
        Value::Float(f64::from(value))
    }
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(value: $t) -> Self {
                Value::Int(i64::try_from(value).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_value!(u16, u32, u64, usize, i32, i64);

#[derive(Debug, Clone, PartialEq)]
enum Child {
    One(Node),
    List(&'static str, Vec<Node>),
    /// Scalars: repeated elements with text in XML, an array of values in JSON.
    Values(&'static str, Vec<Value>),
}

/// An element: attributes, children (single or lists) and optional text.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    name: &'static str,
    attrs: Vec<(&'static str, Value)>,
    children: Vec<Child>,
    text: Option<String>,
}

impl Node {
    /// An empty element named `name`.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            attrs: Vec::new(),
            children: Vec::new(),
            text: None,
        }
    }

    /// Adds an attribute.
    pub fn attr(mut self, key: &'static str, value: impl Into<Value>) -> Self {
        self.attrs.push((key, value.into()));
        self
    }

    /// Adds an attribute when there is a value.
    pub fn attr_opt<V: Into<Value>>(self, key: &'static str, value: Option<V>) -> Self {
        match value {
            Some(value) => self.attr(key, value),
            None => self,
        }
    }

    /// Adds a single child element (a JSON object).
    pub fn child(mut self, node: Node) -> Self {
        self.children.push(Child::One(node));
        self
    }

    /// Adds a list of children named `name` (repeated elements; a JSON array).
    pub fn list(mut self, name: &'static str, nodes: Vec<Node>) -> Self {
        self.children.push(Child::List(name, nodes));
        self
    }

    /// Adds a list of scalars named `name` (`<versions>1</versions>` repeated in XML,
    /// `"versions": [1]` in JSON).
    pub fn values(mut self, name: &'static str, values: Vec<Value>) -> Self {
        self.children.push(Child::Values(name, values));
        self
    }

    /// A body of several elements directly in the envelope (a list at the top, as
    /// `getOpenSubsonicExtensions` answers): render with [`ok`], whose root takes its
    /// children.
    pub fn top_level() -> Self {
        Self::new("")
    }

    /// Sets the text content (`value` in JSON).
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// The element's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The value of attribute `key`, if set.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.attrs
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| value)
    }

    fn write_xml(&self, out: &mut String) {
        out.push('<');
        out.push_str(self.name);
        for (key, value) in &self.attrs {
            let _ = write!(out, " {key}=\"");
            write_scalar(value, out);
            out.push('"');
        }
        if self.children.is_empty() && self.text.is_none() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        if let Some(text) = &self.text {
            escape_xml(text, out);
        }
        for child in &self.children {
            match child {
                Child::One(node) => node.write_xml(out),
                Child::List(_, nodes) => nodes.iter().for_each(|node| node.write_xml(out)),
                Child::Values(name, values) => {
                    for value in values {
                        let _ = write!(out, "<{name}>");
                        write_scalar(value, out);
                        let _ = write!(out, "</{name}>");
                    }
                }
            }
        }
        let _ = write!(out, "</{}>", self.name);
    }

    fn to_json(&self) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        for (key, value) in &self.attrs {
            object.insert((*key).to_string(), json_scalar(value));
        }
        for child in &self.children {
            match child {
                Child::One(node) => {
                    object.insert(node.name.to_string(), node.to_json());
                }
                Child::List(name, nodes) => {
                    object.insert(
                        (*name).to_string(),
                        serde_json::Value::Array(nodes.iter().map(Node::to_json).collect()),
                    );
                }
                Child::Values(name, values) => {
                    object.insert(
                        (*name).to_string(),
                        serde_json::Value::Array(values.iter().map(json_scalar).collect()),
                    );
                }
            }
        }
        if let Some(text) = &self.text {
            object.insert("value".into(), serde_json::Value::String(text.clone()));
        }
        serde_json::Value::Object(object)
    }
}

fn write_scalar(value: &Value, out: &mut String) {
    match value {
        Value::Text(text) => escape_xml(text, out),
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Float(x) => {
            let _ = write!(out, "{}", finite(*x));
        }
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
    }
}

fn json_scalar(value: &Value) -> serde_json::Value {
    match value {
        Value::Text(text) => serde_json::Value::String(text.clone()),
        Value::Int(n) => serde_json::Value::from(*n),
        Value::Float(x) => serde_json::Value::from(finite(*x)),
        Value::Bool(b) => serde_json::Value::Bool(*b),
    }
}

fn finite(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

/// Escapes for attribute values and text; characters XML 1.0 cannot carry become U+FFFD.
fn escape_xml(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// How an answer is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `f=xml` or none.
    Xml,
    /// `f=json`.
    Json,
}

impl Format {
    /// The format a request's `f` asks for (`jsonp` is not served: it is JSON).
    pub fn of(f: Option<&str>) -> Self {
        match f {
            Some(f) if f.eq_ignore_ascii_case("json") || f.eq_ignore_ascii_case("jsonp") => {
                Format::Json
            }
            _ => Format::Xml,
        }
    }

    /// The media type of an answer.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Xml => "text/xml; charset=utf-8",
            Format::Json => "application/json",
        }
    }
}

/// A Subsonic error code (the spec's list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 0: a generic error.
    Generic = 0,
    /// 10: a required parameter is missing.
    MissingParameter = 10,
    /// 20: the client must upgrade.
    ClientTooOld = 20,
    /// 30: the server must upgrade.
    ServerTooOld = 30,
    /// 40: wrong username or password.
    WrongCredentials = 40,
    /// 41: token authentication not supported for LDAP users.
    TokenNotSupported = 41,
    /// 42: the authentication mechanism is not supported.
    AuthNotSupported = 42,
    /// 43: multiple conflicting authentication mechanisms given.
    ConflictingAuth = 43,
    /// 44: an invalid API key.
    InvalidApiKey = 44,
    /// 50: the user may not do this.
    NotAuthorized = 50,
    /// 60: a trial expired.
    TrialOver = 60,
    /// 70: the data was not found.
    NotFound = 70,
}

/// A Subsonic error: its code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The code.
    pub code: ErrorCode,
    /// What went wrong.
    pub message: String,
}

impl Failure {
    /// A failure with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Code 10 for parameter `name`.
    pub fn missing(name: &str) -> Self {
        Self::new(
            ErrorCode::MissingParameter,
            format!("required parameter is missing: {name}"),
        )
    }

    /// Code 70 for `what`.
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// Code 0 with `message`.
    pub fn generic(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Generic, message)
    }
}

/// The envelope around a body: `subsonic-response` with status, versions and the server's
/// name.
fn envelope(status: &str) -> Node {
    Node::new("subsonic-response")
        .attr("status", status)
        .attr("version", API_VERSION)
        .attr("type", "chorus")
        .attr("serverVersion", env!("CARGO_PKG_VERSION"))
        .attr("openSubsonic", true)
}

/// The text of an answer: `body` inside a successful envelope (or an empty success).
pub fn ok(format: Format, body: Option<Node>) -> String {
    let mut root = envelope("ok");
    match body {
        Some(body) if body.name.is_empty() => root.children.extend(body.children),
        Some(body) => root = root.child(body),
        None => {}
    }
    render(format, &root)
}

/// The text of a failed answer.
pub fn failed(format: Format, failure: &Failure) -> String {
    let root = envelope("failed").child(
        Node::new("error")
            .attr("code", failure.code as i64)
            .attr("message", failure.message.as_str()),
    );
    render(format, &root)
}

fn render(format: Format, root: &Node) -> String {
    match format {
        Format::Xml => {
            let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
            // The namespace goes on the root only.
            let mut root = root.clone();
            root.attrs.insert(0, ("xmlns", Value::Text(XMLNS.into())));
            root.write_xml(&mut out);
            out
        }
        Format::Json => {
            let mut object = serde_json::Map::new();
            object.insert(root.name.to_string(), root.to_json());
            serde_json::Value::Object(object).to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn album() -> Node {
        Node::new("album")
            .attr("id", "a1")
            .attr("name", "Tom & \"Jerry\" <live>")
            .attr("songCount", 2u32)
            .attr("starred", false)
            .list(
                "song",
                vec![
                    Node::new("song").attr("id", "s1").attr("duration", 61u64),
                    Node::new("song").attr("id", "s2").attr("bitRate", 96u32),
                ],
            )
            .list("genres", vec![])
    }

    #[test]
    fn xml_has_attributes_repeated_elements_and_escapes() {
        let text = ok(Format::Xml, Some(album()));
        assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<subsonic-response xmlns=\"http://subsonic.org/restapi\" status=\"ok\" version=\"1.16.1\""));
        assert!(text.contains(
            "<album id=\"a1\" name=\"Tom &amp; &quot;Jerry&quot; &lt;live&gt;\" songCount=\"2\" starred=\"false\"><song id=\"s1\" duration=\"61\"/><song id=\"s2\" bitRate=\"96\"/></album></subsonic-response>"
        ), "{text}");
        let lyrics = ok(
            Format::Xml,
            Some(
                Node::new("lyrics")
                    .attr("artist", "x")
                    .text("line 1\nline\u{1} 2"),
            ),
        );
        assert!(lyrics.contains("<lyrics artist=\"x\">line 1&#10;line\u{FFFD} 2</lyrics>"));
    }

    #[test]
    fn json_types_numbers_and_lists() {
        let text = ok(Format::Json, Some(album()));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let root = &value["subsonic-response"];
        assert_eq!(root["status"], "ok");
        assert_eq!(root["openSubsonic"], true);
        let album = &root["album"];
        assert_eq!(album["songCount"], 2);
        assert_eq!(album["starred"], false);
        assert_eq!(album["song"].as_array().unwrap().len(), 2);
        assert_eq!(album["song"][1]["bitRate"], 96);
        assert_eq!(album["genres"], serde_json::json!([]));
        let lyrics = ok(Format::Json, Some(Node::new("lyrics").text("words")));
        assert!(lyrics.contains("\"lyrics\":{\"value\":\"words\"}"));
    }

    #[test]
    fn top_level_lists_and_scalar_lists() {
        let body = Node::top_level().list(
            "openSubsonicExtensions",
            vec![
                Node::new("openSubsonicExtensions")
                    .attr("name", "formPost")
                    .values("versions", vec![Value::Int(1)]),
            ],
        );
        let json: serde_json::Value =
            serde_json::from_str(&ok(Format::Json, Some(body.clone()))).unwrap();
        assert_eq!(
            json["subsonic-response"]["openSubsonicExtensions"],
            serde_json::json!([{"name": "formPost", "versions": [1]}])
        );
        let xml = ok(Format::Xml, Some(body));
        assert!(xml.contains(
            "openSubsonic=\"true\"><openSubsonicExtensions name=\"formPost\"><versions>1</versions></openSubsonicExtensions></subsonic-response>"
        ), "{xml}");
    }

    #[test]
    fn failures_carry_code_and_message() {
        let failure = Failure::new(ErrorCode::WrongCredentials, "Wrong username or password");
        let xml = failed(Format::Xml, &failure);
        assert!(xml.contains("status=\"failed\""));
        assert!(xml.contains("<error code=\"40\" message=\"Wrong username or password\"/>"));
        let json: serde_json::Value =
            serde_json::from_str(&failed(Format::Json, &failure)).unwrap();
        assert_eq!(json["subsonic-response"]["error"]["code"], 40);
        assert_eq!(Format::of(Some("JSON")), Format::Json);
        assert_eq!(Format::of(Some("xml")), Format::Xml);
        assert_eq!(Format::of(None), Format::Xml);
    }
}
