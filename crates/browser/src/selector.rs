//! A runbook target as the locators to try, semantic ones first: role and
//! accessible name, label, visible text, id; CSS last.
//!
//! WebDriver has no role locator, so roles become XPath over the HTML
//! elements that carry them implicitly (`<button>`, `<a href>`, `<h1>`…)
//! and the explicit `role` attribute. Names compare after whitespace is
//! collapsed, against the element's text or its `aria-label`.

use roster_catalog::runbook::Target;

/// One locator: an XPath expression or a CSS selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Loc {
    XPath(String),
    Css(String),
}

impl Loc {
    pub fn as_locator(&self) -> fantoccini::Locator<'_> {
        match self {
            Loc::XPath(x) => fantoccini::Locator::XPath(x),
            Loc::Css(c) => fantoccini::Locator::Css(c),
        }
    }
    /// A JavaScript expression that evaluates to the matching elements
    /// (for redaction rectangles).
    pub fn js_nodes(&self) -> String {
        match self {
            Loc::Css(c) => format!(
                "Array.from(document.querySelectorAll({}))",
                serde_json::Value::String(c.clone())
            ),
            Loc::XPath(x) => format!(
                "(function(){{var r=document.evaluate({},document,null,7,null);var a=[];for(var i=0;i<r.snapshotLength;i++)a.push(r.snapshotItem(i));return a}})()",
                serde_json::Value::String(x.clone())
            ),
        }
    }
}

/// An XPath string literal for `s` (with `concat()` when it holds both
/// quote kinds).
pub fn lit(s: &str) -> String {
    if !s.contains('\'') {
        format!("'{s}'")
    } else if !s.contains('"') {
        format!("\"{s}\"")
    } else {
        let parts: Vec<String> = s.split('\'').map(|p| format!("'{p}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}

const TEXT: &str = "normalize-space(.)";

fn named(base: &str, name: Option<&str>, contains: Option<&str>) -> String {
    let mut x = base.to_string();
    if let Some(n) = name {
        x.push_str(&format!("[{TEXT}={l} or @aria-label={l}]", l = lit(n)));
    }
    if let Some(t) = contains {
        x.push_str(&format!(
            "[contains({TEXT},{l}) or contains(@aria-label,{l})]",
            l = lit(t)
        ));
    }
    x
}

fn role_xpath(role: &str, name: Option<&str>, contains: Option<&str>) -> String {
    let bases: Vec<String> = match role {
        "button" => vec![
            "//button".into(),
            "//*[@role='button']".into(),
            // <input type=submit value=…>: its name is its value.
            match (name, contains) {
                (Some(n), _) => format!(
                    "//input[@type='submit' or @type='button'][@value={}]",
                    lit(n)
                ),
                (None, Some(t)) => format!(
                    "//input[@type='submit' or @type='button'][contains(@value,{})]",
                    lit(t)
                ),
                (None, None) => "//input[@type='submit' or @type='button']".into(),
            },
        ],
        "link" => vec!["//a[@href]".into(), "//*[@role='link']".into()],
        "heading" => vec![
            "//*[self::h1 or self::h2 or self::h3 or self::h4 or self::h5 or self::h6]".into(),
            "//*[@role='heading']".into(),
        ],
        "dialog" => vec![
            "//dialog[@open]".into(),
            "//*[@role='dialog' or @role='alertdialog']".into(),
        ],
        "alert" => vec!["//*[@role='alert']".into()],
        "status" => vec!["//*[@role='status']".into(), "//output".into()],
        "textbox" => vec![
            "//input[not(@type) or @type='text' or @type='email' or @type='search' or @type='password' or @type='tel']".into(),
            "//textarea".into(),
            "//*[@role='textbox']".into(),
        ],
        "combobox" => vec!["//select".into(), "//*[@role='combobox']".into()],
        "region" => vec![
            "//section[@aria-label or @aria-labelledby]".into(),
            "//*[@role='region']".into(),
        ],
        other => vec![format!("//*[@role={}]", lit(other))],
    };
    bases
        .iter()
        .map(|b| {
            if b.starts_with("//input") {
                b.clone()
            } else if matches!(role, "dialog" | "region") && name.is_some() {
                // A dialog's name is its aria-label or its title's text.
                let n = name.unwrap_or_default();
                format!("{b}[@aria-label={l} or .//*[{TEXT}={l}]]", l = lit(n))
                    + &contains
                        .map(|t| format!("[contains({TEXT},{})]", lit(t)))
                        .unwrap_or_default()
            } else {
                named(b, name, contains)
            }
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

fn label_xpath(label: &str) -> String {
    let l = lit(label);
    format!(
        "//*[self::input or self::select or self::textarea][@id=//label[{TEXT}={l}]/@for] \
         | //label[{TEXT}={l}]//*[self::input or self::select or self::textarea] \
         | //*[self::input or self::select or self::textarea][@aria-label={l}]"
    )
}

/// The locators for `t`, in the order to try them.
pub fn locators(t: &Target) -> Vec<Loc> {
    let mut out = Vec::new();
    if let Some(role) = &t.role {
        out.push(Loc::XPath(role_xpath(
            role,
            t.name.as_deref(),
            t.text.as_deref(),
        )));
    }
    if let Some(label) = &t.label {
        out.push(Loc::XPath(label_xpath(label)));
    }
    if let Some(id) = &t.id {
        out.push(Loc::XPath(format!("//*[@id={}]", lit(id))));
    }
    if t.role.is_none()
        && let Some(text) = &t.text
    {
        // The innermost element whose text contains it.
        out.push(Loc::XPath(format!(
            "//body//*[not(self::script)][contains({TEXT},{l})][not(*[contains({TEXT},{l})])]",
            l = lit(text)
        )));
    }
    if let Some(css) = &t.css {
        out.push(Loc::Css(css.clone()));
    }
    out
}

/// `t` with `{name}` placeholders filled from `fill`.
pub fn fill_target(t: &Target, fill: &dyn Fn(&str) -> String) -> Target {
    Target {
        role: t.role.clone(),
        name: t.name.as_deref().map(fill),
        label: t.label.as_deref().map(fill),
        text: t.text.as_deref().map(fill),
        id: t.id.as_deref().map(fill),
        css: t.css.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_survive_both_quote_kinds() {
        assert_eq!(lit("a"), "'a'");
        assert_eq!(lit("it's"), "\"it's\"");
        assert_eq!(lit("a'b\"c"), "concat('a', \"'\", 'b\"c')");
    }

    #[test]
    fn semantic_locators_come_before_css() {
        let t = Target {
            role: Some("button".into()),
            name: Some("Deactivate member".into()),
            css: Some(".danger".into()),
            ..Target::default()
        };
        let l = locators(&t);
        assert_eq!(l.len(), 2);
        assert!(matches!(&l[0], Loc::XPath(x) if x.contains("'Deactivate member'")));
        assert_eq!(l[1], Loc::Css(".danger".into()));
    }
}
