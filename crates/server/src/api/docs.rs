//! `/api/docs`: the API reference as one HTML page, rendered by roster
//! from its own OpenAPI document (no Swagger UI, no script, nothing
//! downloaded): each operation with its method, path, scope, parameters,
//! request body and answers, and the schemas they name.

use serde_json::Value;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `#/components/schemas/Name` → `Name`, linked; an inline schema as JSON.
fn schema_html(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("<a href=\"#schema-{0}\"><code>{0}</code></a>", esc(name));
    }
    if schema.get("type").and_then(Value::as_str) == Some("array")
        && let Some(items) = schema.get("items")
    {
        return format!("array of {}", schema_html(items));
    }
    format!(
        "<code>{}</code>",
        esc(&serde_json::to_string(schema).unwrap_or_default())
    )
}

fn content_html(content: Option<&Value>) -> String {
    let Some(Value::Object(content)) = content else {
        return String::new();
    };
    content
        .iter()
        .map(|(media, c)| {
            format!(
                " <code>{}</code> {}",
                esc(media),
                c.get("schema").map(schema_html).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// The page for `doc` (the OpenAPI document as JSON).
pub fn render(doc: &Value) -> String {
    let mut out = String::new();
    let title = doc["info"]["title"].as_str().unwrap_or("API");
    out.push_str(&format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{0}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.4}}\
         code,pre{{background:#f4f4f4;padding:0 .2rem}}pre{{padding:.5rem;overflow:auto}}\
         .op{{border-top:1px solid #ccc;padding:.5rem 0}}.m{{font-weight:bold;display:inline-block;min-width:4rem}}\
         .scope{{background:#eef;padding:0 .3rem;border-radius:3px}}table{{border-collapse:collapse}}td,th{{border:1px solid #ddd;padding:.2rem .4rem;text-align:left}}</style>\
         </head><body><h1>{0}</h1><p>{1}</p>\
         <p>The machine-readable document: <a href=\"/api/v1/openapi.json\"><code>/api/v1/openapi.json</code></a>. \
         Authenticate with <code>Authorization: Bearer rat_…</code>; each operation names the one scope its token needs.</p>",
        esc(title),
        esc(doc["info"]["description"].as_str().unwrap_or(""))
    ));
    out.push_str("<h2>Operations</h2>");
    if let Some(Value::Object(paths)) = doc.get("paths") {
        for (path, item) in paths {
            let Value::Object(ops) = item else { continue };
            for (method, op) in ops {
                out.push_str(&format!(
                    "<div class=\"op\" id=\"{}\"><h3><span class=\"m\">{}</span> <code>{}</code></h3>",
                    esc(op["operationId"].as_str().unwrap_or("")),
                    esc(&method.to_uppercase()),
                    esc(path)
                ));
                out.push_str(&format!(
                    "<p><b>{}</b> &middot; scope <span class=\"scope\">{}</span></p>",
                    esc(op["summary"].as_str().unwrap_or("")),
                    esc(op["x-roster-scope"].as_str().unwrap_or(""))
                ));
                if let Some(d) = op["description"].as_str() {
                    out.push_str(&format!("<p>{}</p>", esc(d)));
                }
                if let Some(Value::Array(params)) = op.get("parameters")
                    && !params.is_empty()
                {
                    out.push_str("<table><tr><th>parameter</th><th>in</th><th>required</th><th>schema</th><th>description</th></tr>");
                    for p in params {
                        out.push_str(&format!(
                            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            esc(p["name"].as_str().unwrap_or("")),
                            esc(p["in"].as_str().unwrap_or("")),
                            if p["required"].as_bool().unwrap_or(false) { "yes" } else { "no" },
                            p.get("schema").map(schema_html).unwrap_or_default(),
                            esc(p["description"].as_str().unwrap_or(""))
                        ));
                    }
                    out.push_str("</table>");
                }
                if let Some(body) = op.get("requestBody") {
                    out.push_str(&format!(
                        "<p>Request body:{}</p>",
                        content_html(body.get("content"))
                    ));
                }
                if let Some(Value::Object(responses)) = op.get("responses") {
                    out.push_str("<ul>");
                    for (status, r) in responses {
                        out.push_str(&format!(
                            "<li><code>{}</code> {}{}</li>",
                            esc(status),
                            esc(r["description"].as_str().unwrap_or("")),
                            content_html(r.get("content"))
                        ));
                    }
                    out.push_str("</ul>");
                }
                out.push_str("</div>");
            }
        }
    }
    out.push_str("<h2>Schemas</h2>");
    if let Some(Value::Object(schemas)) = doc.pointer("/components/schemas") {
        for (name, schema) in schemas {
            out.push_str(&format!(
                "<h3 id=\"schema-{0}\">{0}</h3><pre>{1}</pre>",
                esc(name),
                esc(&serde_json::to_string_pretty(schema).unwrap_or_default())
            ));
        }
    }
    out.push_str("</body></html>\n");
    out
}
