//! The policies a file holds, each as the bytes the module would receive on its host.
//!
//! A file is a policy itself (JSON or YAML), or a host configuration that embeds policies: an
//! Envoy bootstrap (`envoy.filters.http.wasm` filters; a `StringValue` is passed as written, a
//! `Struct` as JSON), an Istio `WasmPlugin` or Envoy Gateway `EnvoyExtensionPolicy` (their
//! config objects reach the module as JSON), a Kong declarative configuration (`filter_chains`
//! filters and `plugins` entities named `api_guard`), or an APISIX route (`plugins.api_guard.conf`).

use api_guard::policy::capabilities::HostKind;

use crate::yaml::{self, Node, Tree};

/// Where a policy sits in its file, and how to find a field's line there.
pub struct Embedded {
    /// Where in the file, as a field path (`` for a file that is the policy).
    pub at: String,
    /// The host the file is for, if its kind says.
    pub host: Option<HostKind>,
    /// What the module receives.
    pub bytes: Vec<u8>,
    /// The policy as a tree with lines of the file.
    tree: Option<Node>,
    /// The file line where the policy's own text starts, when it is written as text
    /// (a JSON file, an embedded JSON string); its line 1 is this line.
    text_line: Option<usize>,
    /// Cluster names the file defines (Envoy bootstraps), to check `remote_jwks` clusters.
    pub clusters: Option<Vec<String>>,
    /// For an Envoy bootstrap: whether its `stats_config.stats_tags` extract api-guard's labels.
    pub stats_tags: Option<bool>,
}

impl Embedded {
    /// The file line for a field path, or for a line of the policy's own text.
    pub fn line(&self, path: &str, text_line: Option<usize>) -> Option<usize> {
        match (text_line, self.text_line, &self.tree) {
            // A syntax error, or a field of a text not read as a tree: the parser's line.
            (Some(l), Some(start), tree) if path == "." || tree.is_none() => Some(start + l.max(1) - 1),
            (_, _, Some(tree)) => Some(tree.line_of(path)),
            (_, start, None) => start,
        }
    }
}

/// What kind of file this is, as said to the user.
pub fn kind_name(host: Option<HostKind>) -> &'static str {
    match host {
        Some(HostKind::Envoy) => "Envoy configuration",
        Some(HostKind::Kong) => "Kong declarative configuration",
        Some(HostKind::Apisix) => "APISIX route",
        _ => "policy",
    }
}

/// The policies in `text`. A YAML error is returned with its line.
pub fn policies(text: &str) -> Result<Vec<Embedded>, yaml::YamlError> {
    let trimmed = text.trim_start();
    // A JSON document: the module reads it as written.
    let docs = match yaml::load(text) {
        Ok(docs) => docs,
        // Not YAML, but maybe JSON that YAML reads differently: the module decides.
        Err(_) if trimmed.starts_with('{') || trimmed.starts_with('"') || trimmed.is_empty() => {
            return Ok(vec![whole(text, None)]);
        }
        Err(e) => return Err(e),
    };
    let Some(first) = docs.first() else { return Ok(vec![whole(text, None)]) };
    if docs.len() == 1 && !is_host_file(first) {
        let is_json = trimmed.starts_with('{') || trimmed.starts_with('"');
        return Ok(vec![if is_json {
            whole(text, Some(first.clone()))
        } else {
            yaml_policy(first, String::new(), None)
        }]);
    }
    let mut found = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let prefix = if docs.len() > 1 { format!("(document {}) ", i + 1) } else { String::new() };
        embedded_in(doc, &prefix, &mut found);
    }
    Ok(found)
}

fn is_host_file(doc: &Node) -> bool {
    ["static_resources", "_format_version", "apiVersion", "plugins", "uri", "uris", "wasm"]
        .iter()
        .any(|k| doc.get(k).is_some())
}

/// Whether `text` is an APISIX `conf/config.yaml` that registers the module (a `wasm.plugins`
/// entry named `api_guard` with its file): a host file without a policy.
pub fn registers_module(text: &str) -> bool {
    let Ok(docs) = yaml::load(text) else { return false };
    docs.iter().any(|d| match d.get("wasm").and_then(|w| w.get("plugins")).map(|p| &p.value) {
        Some(Tree::Seq(items)) => items.iter().any(|i| {
            i.get("name").and_then(Node::as_str) == Some("api_guard")
                && i.get("file").and_then(Node::as_str).is_some()
        }),
        _ => false,
    })
}

/// A file that is one policy, given as text.
fn whole(text: &str, tree: Option<Node>) -> Embedded {
    Embedded {
        at: String::new(),
        host: None,
        bytes: text.as_bytes().to_vec(),
        tree,
        text_line: Some(1),
        clusters: None,
        stats_tags: None,
    }
}

/// A policy written as YAML (or JSON within YAML): the module gets it as JSON.
fn yaml_policy(node: &Node, at: String, host: Option<HostKind>) -> Embedded {
    Embedded {
        at,
        host,
        bytes: node.to_json().to_string().into_bytes(),
        tree: Some(node.clone()),
        text_line: None,
        clusters: None,
        stats_tags: None,
    }
}

/// A policy written as a string (a JSON text inside the host file).
fn string_policy(node: &Node, text: &str, at: String, host: Option<HostKind>) -> Embedded {
    let start = node.block.unwrap_or(node.line);
    // The JSON inside, read again for its lines, moved to where it starts in the file.
    let tree = yaml::load(text).ok().and_then(|d| d.into_iter().next()).map(|mut t| {
        shift(&mut t, start - 1);
        t
    });
    Embedded {
        at,
        host,
        bytes: text.as_bytes().to_vec(),
        tree,
        text_line: Some(start),
        clusters: None,
        stats_tags: None,
    }
}

fn shift(node: &mut Node, by: usize) {
    node.line += by;
    match &mut node.value {
        Tree::Scalar(_) => {}
        Tree::Seq(items) => items.iter_mut().for_each(|n| shift(n, by)),
        Tree::Map(entries) => entries.iter_mut().for_each(|(_, n)| shift(n, by)),
    }
}

/// A policy value: a string is passed as written, anything else as JSON.
fn policy_at(node: &Node, at: String, host: HostKind) -> Embedded {
    match node.as_str() {
        Some(text) => string_policy(node, text, at, Some(host)),
        None => yaml_policy(node, at, Some(host)),
    }
}

fn embedded_in(doc: &Node, prefix: &str, found: &mut Vec<Embedded>) {
    if doc.get("static_resources").is_some() {
        let clusters = cluster_names(doc);
        let tags = has_stats_tags(doc);
        let mut paths = Vec::new();
        find(doc, String::new(), &mut paths, &|n| {
            n.get("name").and_then(Node::as_str) == Some("envoy.filters.http.wasm")
                || n.get("typed_config")
                    .and_then(|t| t.get("@type"))
                    .and_then(Node::as_str)
                    .is_some_and(|t| t.ends_with("envoy.extensions.filters.http.wasm.v3.Wasm"))
        });
        for (path, filter) in paths {
            let Some(config) = filter.get("typed_config").and_then(|t| t.get("config")) else { continue };
            let Some(configuration) = config.get("configuration") else {
                // No configuration: the module gets an empty one (the defaults).
                found.push(Embedded {
                    clusters: Some(clusters.clone()),
                    stats_tags: Some(tags),
                    ..empty(prefix, &path, config)
                });
                continue;
            };
            let at = format!("{prefix}{path}.typed_config.config.configuration");
            let kind = configuration.get("@type").and_then(Node::as_str).unwrap_or("");
            let mut e = match configuration.get("value") {
                Some(v) if kind.ends_with("StringValue") => {
                    policy_at(v, format!("{at}.value"), HostKind::Envoy)
                }
                Some(v) => yaml_policy(v, format!("{at}.value"), Some(HostKind::Envoy)),
                None => empty(prefix, &at, configuration),
            };
            e.clusters = Some(clusters.clone());
            e.stats_tags = Some(tags);
            found.push(e);
        }
        return;
    }
    if doc.get("_format_version").is_some() {
        let mut paths = Vec::new();
        find(doc, String::new(), &mut paths, &|n| {
            n.get("name").and_then(Node::as_str) == Some("api_guard") && n.get("config").is_some()
        });
        for (path, entry) in paths {
            if let Some(config) = entry.get("config") {
                found.push(policy_at(config, format!("{prefix}{path}.config"), HostKind::Kong));
            }
        }
        return;
    }
    if let Some(spec) = doc.get("spec") {
        // Istio WasmPlugin (`pluginConfig`), Envoy Gateway EnvoyExtensionPolicy (`wasm[].config`).
        if let Some(config) = spec.get("pluginConfig") {
            found.push(policy_at(config, format!("{prefix}spec.pluginConfig"), HostKind::Envoy));
        }
        if let Some(Tree::Seq(items)) = spec.get("wasm").map(|w| &w.value) {
            for (i, item) in items.iter().enumerate() {
                if let Some(config) = item.get("config") {
                    found.push(policy_at(config, format!("{prefix}spec.wasm[{i}].config"), HostKind::Envoy));
                }
            }
        }
        return;
    }
    if let Some(conf) = doc.get("plugins").and_then(|p| p.get("api_guard")).and_then(|g| g.get("conf")) {
        found.push(policy_at(conf, format!("{prefix}plugins.api_guard.conf"), HostKind::Apisix));
    }
}

fn empty(prefix: &str, at: &str, node: &Node) -> Embedded {
    Embedded {
        at: format!("{prefix}{at}"),
        host: Some(HostKind::Envoy),
        bytes: Vec::new(),
        tree: None,
        text_line: Some(node.line),
        clusters: None,
        stats_tags: None,
    }
}

/// Every node `wanted` picks, with its path.
fn find<'a>(node: &'a Node, path: String, out: &mut Vec<(String, &'a Node)>, wanted: &dyn Fn(&Node) -> bool) {
    if wanted(node) {
        out.push((path.clone(), node));
        return;
    }
    match &node.value {
        Tree::Scalar(_) => {}
        Tree::Seq(items) => {
            for (i, n) in items.iter().enumerate() {
                find(n, format!("{path}[{i}]"), out, wanted);
            }
        }
        Tree::Map(entries) => {
            for (k, n) in entries {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                find(n, p, out, wanted);
            }
        }
    }
}

/// Whether the bootstrap's `stats_config.stats_tags` holds every rule api-guard's labels need.
fn has_stats_tags(doc: &Node) -> bool {
    let have: Vec<(&str, &str)> =
        match doc.get("stats_config").and_then(|s| s.get("stats_tags")).map(|t| &t.value) {
            Some(Tree::Seq(items)) => items
                .iter()
                .filter_map(|t| Some((t.get("tag_name")?.as_str()?, t.get("regex")?.as_str()?)))
                .collect(),
            _ => Vec::new(),
        };
    api_guard::policy::telemetry::STATS_TAGS.iter().all(|want| have.contains(want))
}

fn cluster_names(doc: &Node) -> Vec<String> {
    match doc.get("static_resources").and_then(|s| s.get("clusters")).map(|c| &c.value) {
        Some(Tree::Seq(items)) => {
            items.iter().filter_map(|c| c.get("name")?.as_str().map(str::to_string)).collect()
        }
        _ => Vec::new(),
    }
}
