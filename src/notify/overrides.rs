//! Operator templates: any part of any message to a person (subject, text,
//! HTML, SMS) may be replaced by a file in `notify.templates_dir`, for
//! every tenant or for one, rendered with minijinja in a sandbox.
//!
//! Layout: `<dir>/<kind>.<part>` serves every tenant and
//! `<dir>/tenants/<slug>/<kind>.<part>` one tenant, ahead of the former;
//! `<kind>` is a [`MessageKind`] name (`otp`, `new_device`, …) and `<part>`
//! one of `subject`, `txt`, `html`, `sms`. A part without a file keeps the
//! built-in ([`super::render`]). Files are read when a message is rendered,
//! so a change takes effect with the next message, without a restart.
//!
//! Rules that keep a message whole:
//! - A subject template does not see `code`: subjects show in notification
//!   previews and mail logs.
//! - A text override without an HTML override at the same or a more
//!   specific level sends text only, so the words an operator wrote are the
//!   ones read (mail clients show the HTML part when there is one). An HTML
//!   override that renders empty also sends text only.
//! - An override that cannot be read or rendered (a syntax error, an
//!   undefined variable, too large, out of fuel) is logged and that part is
//!   the built-in: a broken template never stops a code from going out.
//!
//! Sandbox: the templates see only [`Vars`]; there is no loader (no
//! `include`, `extends` or `import`, so no file but the template itself is
//! read), no function reaching outside, a fuel limit on the work a template
//! may do, and HTML parts escape every value. Undefined names are errors.
//! Log lines name the file, line and kind of error, never a value (the code
//! is a value).

use std::io::Read;
use std::path::{Path, PathBuf};

use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};

use super::render::{Message, Vars};
use crate::store::{MessageKind, OutboxChannel};

/// Largest template file read, in bytes.
const MAX_TEMPLATE_BYTES: u64 = 64 * 1024;
/// Largest rendered body, in bytes.
const MAX_OUTPUT_BYTES: usize = 256 * 1024;
/// Longest subject, in characters (one line).
const MAX_SUBJECT_CHARS: usize = 200;
/// Longest SMS, in characters (ten segments).
const MAX_SMS_CHARS: usize = 1600;
/// Work a template may do (minijinja fuel: about one unit per instruction);
/// a generous page of loops, not an endless one.
const FUEL: u64 = 100_000;

/// One replaceable part of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Subject,
    Text,
    Html,
    Sms,
}

impl Part {
    pub const ALL: [Part; 4] = [Part::Subject, Part::Text, Part::Html, Part::Sms];

    /// The file name ending.
    pub fn suffix(self) -> &'static str {
        match self {
            Part::Subject => "subject",
            Part::Text => "txt",
            Part::Html => "html",
            Part::Sms => "sms",
        }
    }

    /// The parts a channel sends.
    pub fn of(channel: OutboxChannel) -> &'static [Part] {
        match channel {
            OutboxChannel::Email => &[Part::Subject, Part::Text, Part::Html],
            _ => &[Part::Sms],
        }
    }

    fn file(self, kind: MessageKind) -> String {
        format!("{}.{}", kind.as_str(), self.suffix())
    }
}

/// Where a part comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    BuiltIn,
    AllTenants,
    Tenant,
}

impl Source {
    pub fn label(self) -> &'static str {
        match self {
            Source::BuiltIn => "built-in",
            Source::AllTenants => "all tenants",
            Source::Tenant => "this tenant",
        }
    }
}

/// An override file found for a part.
struct Found {
    source: Source,
    /// Its path below the templates directory.
    file: String,
    /// The file's text, or why it could not be read.
    text: Result<String, String>,
}

/// One part as the admin preview shows it.
pub struct PartPreview {
    pub part: Part,
    pub source: Source,
    /// The override's path relative to the templates directory; empty for
    /// a built-in.
    pub file: String,
    /// What would be sent (after any fallback).
    pub rendered: String,
    /// Why the override was not used, in full (the preview's values are
    /// samples, not secrets).
    pub error: Option<String>,
}

/// The templates directory.
#[derive(Clone, Debug)]
pub struct Overrides {
    root: PathBuf,
}

impl Overrides {
    /// `dir` must be a directory (checked at start-up: a typo should not
    /// silently send the built-ins).
    pub fn open(dir: &Path) -> Result<Self, String> {
        if dir.is_dir() {
            Ok(Self {
                root: dir.to_path_buf(),
            })
        } else {
            Err(format!("notify.templates_dir {} is not a directory", dir.display()))
        }
    }

    /// The message with every override applied; `builtin` is the message
    /// without them.
    pub fn apply(&self, kind: MessageKind, channel: OutboxChannel, vars: &Vars, builtin: Message) -> Message {
        let mut parts = self.preview(kind, channel, vars, &builtin);
        let mut take = |part: Part| {
            parts
                .iter_mut()
                .find(|p| p.part == part)
                .map(|p| std::mem::take(&mut p.rendered))
        };
        match channel {
            OutboxChannel::Email => {
                let subject = take(Part::Subject).unwrap_or(builtin.subject);
                let text = take(Part::Text).unwrap_or(builtin.text);
                let html = take(Part::Html).filter(|h| !h.trim().is_empty());
                Message { subject, text, html }
            }
            _ => Message {
                subject: builtin.subject,
                text: take(Part::Sms).unwrap_or(builtin.text),
                html: None,
            },
        }
    }

    /// Each part the channel sends, where it comes from and what it says
    /// (what [`Self::apply`] sends, and the admin site's preview).
    pub fn preview(
        &self,
        kind: MessageKind,
        channel: OutboxChannel,
        vars: &Vars,
        builtin: &Message,
    ) -> Vec<PartPreview> {
        let mut out = builtin_parts(channel, builtin);
        for p in &mut out {
            let Some(found) = self.find(&vars.tenant.slug, kind, p.part) else {
                continue;
            };
            p.file = found.file;
            match found.text.and_then(|source| render(p.part, &p.file, &source, vars)) {
                Ok(rendered) => {
                    p.source = found.source;
                    p.rendered = rendered;
                }
                Err(error) => p.error = Some(error),
            }
        }
        // Text written by the operator is not paired with an HTML part
        // written by someone else.
        let text = out.iter().find(|p| p.part == Part::Text).map(|p| p.source);
        if let (Some(text), Some(html)) = (text, out.iter_mut().find(|p| p.part == Part::Html))
            && text > html.source
        {
            html.rendered = String::new();
        }
        out
    }

    /// The most specific override file of `part`, if any exists.
    fn find(&self, tenant_slug: &str, kind: MessageKind, part: Part) -> Option<Found> {
        let name = part.file(kind);
        let mut candidates = Vec::with_capacity(2);
        // Slugs are validated already; this keeps a path a path whatever
        // reaches here.
        if !tenant_slug.is_empty()
            && tenant_slug
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            candidates.push((Source::Tenant, self.root.join("tenants").join(tenant_slug).join(&name)));
        }
        candidates.push((Source::AllTenants, self.root.join(&name)));
        candidates
            .into_iter()
            .find(|(_, path)| path.is_file())
            .map(|(source, path)| {
                let file = self.shown(&path);
                Found {
                    source,
                    text: read(&path, &file),
                    file,
                }
            })
    }

    /// `path` as shown: relative to the templates directory.
    fn shown(&self, path: &Path) -> String {
        path.strip_prefix(&self.root).unwrap_or(path).display().to_string()
    }

    /// Every override file's problems, for the start-up log: a syntax error
    /// is better reported before the first message needs the file.
    pub fn check_all(&self) -> Vec<String> {
        let mut dirs = vec![self.root.clone()];
        if let Ok(entries) = std::fs::read_dir(self.root.join("tenants")) {
            dirs.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
        let mut problems = Vec::new();
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for path in entries.flatten().map(|e| e.path()).filter(|p| p.is_file()) {
                let shown = self.shown(&path);
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                let known = MessageKind::TO_PEOPLE
                    .iter()
                    .any(|k| Part::ALL.iter().any(|p| p.file(*k) == name));
                if !known {
                    problems.push(format!(
                        "{shown}: not a template forge uses (see the README's Message templates)"
                    ));
                    continue;
                }
                let checked = read(&path, &shown).and_then(|source| {
                    engine()
                        .template_from_named_str(&shown, &source)
                        .map(|_| ())
                        .map_err(|e| safe_error(&shown, &e))
                });
                if let Err(e) = checked {
                    problems.push(e);
                }
            }
        }
        problems.sort();
        problems
    }
}

/// The parts of a message without overrides, as the preview shows them.
pub fn builtin_parts(channel: OutboxChannel, builtin: &Message) -> Vec<PartPreview> {
    Part::of(channel)
        .iter()
        .map(|&part| PartPreview {
            part,
            source: Source::BuiltIn,
            file: String::new(),
            rendered: match part {
                Part::Subject => builtin.subject.clone(),
                Part::Text | Part::Sms => builtin.text.clone(),
                Part::Html => builtin.html.clone().unwrap_or_default(),
            },
            error: None,
        })
        .collect()
}

/// The text of the template at `path`; errors name it as `shown` (below
/// the templates directory: the admin site shows them, and the server's
/// file layout is none of a tenant administrator's business).
fn read(path: &Path, shown: &str) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{shown}: {e}"))?;
    let mut text = String::new();
    file.take(MAX_TEMPLATE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("{shown}: {e}"))?;
    if text.len() as u64 > MAX_TEMPLATE_BYTES {
        return Err(format!("{shown}: larger than {MAX_TEMPLATE_BYTES} bytes"));
    }
    Ok(text)
}

/// The sandbox: no loader, fuel, strict undefined, HTML escaping for the
/// HTML part only.
fn engine() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env
}

/// Renders one override. The error is complete (for the preview); what is
/// logged is [`safe_error`]'s.
fn render(part: Part, name: &str, source: &str, vars: &Vars) -> Result<String, String> {
    // A subject shows in notification previews and mail logs: it gets no
    // code to show (naming `code` there fails like any unknown name).
    let without_code;
    let vars = if part == Part::Subject {
        without_code = Vars {
            code: None,
            ..vars.clone()
        };
        &without_code
    } else {
        vars
    };
    let rendered = engine().render_named_str(name, source, Serde(vars)).map_err(|e| {
        tracing::warn!(template = %name, error = %safe_error(name, &e), "message template failed; sending the built-in part");
        format!("{e}")
    })?;
    let rendered = match part {
        Part::Subject => {
            let line = rendered.split_whitespace().collect::<Vec<_>>().join(" ");
            line.chars().take(MAX_SUBJECT_CHARS).collect()
        }
        Part::Sms => rendered.trim().chars().take(MAX_SMS_CHARS).collect(),
        Part::Text | Part::Html => rendered,
    };
    if rendered.len() > MAX_OUTPUT_BYTES {
        tracing::warn!(template = %name, "message template rendered more than {MAX_OUTPUT_BYTES} bytes; sending the built-in part");
        return Err(format!("renders more than {MAX_OUTPUT_BYTES} bytes"));
    }
    if part == Part::Subject && rendered.is_empty() {
        return Err("renders an empty subject".to_owned());
    }
    Ok(rendered)
}

/// An error as the log may show it: where, and what kind of problem; the
/// detail only for syntax errors, found before any value was seen.
fn safe_error(name: &str, e: &minijinja::Error) -> String {
    let line = e.line().map(|l| format!(":{l}")).unwrap_or_default();
    match (e.kind(), e.detail()) {
        (ErrorKind::SyntaxError, Some(detail)) => format!("{name}{line}: syntax error: {detail}"),
        (kind, _) => format!("{name}{line}: {kind}"),
    }
}

#[cfg(test)]
mod tests;
