//! The Chinese documentation follows the English one section by section.
//!
//! README.zh.md and docs/zh/*.md translate README.md and docs/*.md. Every heading of a
//! Chinese file carries the English heading it translates in an HTML comment on the same
//! line (`## 选择后端 <!-- Choosing a backend -->`). For each pair of files these tests
//! compare the English headings with the comments of the Chinese ones, in order and with
//! their levels, so a section added, renamed, moved or removed on one side only fails
//! here, naming the heading missing on the other side. They also check the language
//! switch at the top of both files of a pair, and that the relative links of the Chinese
//! files lead to files (and `#anchors`) that exist.

use std::fs;
use std::path::{Path, PathBuf};

/// A translated file: the English original, its Chinese translation (both relative to the
/// repository root) and the link each one's language switch has to the other.
struct Pair {
    english: &'static str,
    chinese: &'static str,
    english_links_to: &'static str,
    chinese_links_to: &'static str,
}

const PAIRS: [Pair; 4] = [
    Pair {
        english: "README.md",
        chinese: "README.zh.md",
        english_links_to: "README.zh.md",
        chinese_links_to: "README.md",
    },
    Pair {
        english: "docs/flink.md",
        chinese: "docs/zh/flink.md",
        english_links_to: "zh/flink.md",
        chinese_links_to: "../flink.md",
    },
    Pair {
        english: "docs/c-api.md",
        chinese: "docs/zh/c-api.md",
        english_links_to: "zh/c-api.md",
        chinese_links_to: "../c-api.md",
    },
    Pair {
        english: "docs/architecture.md",
        chinese: "docs/zh/architecture.md",
        english_links_to: "zh/architecture.md",
        chinese_links_to: "../architecture.md",
    },
];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Heading {
    level: usize,
    /// The English heading: the heading itself in an English file, the text of the
    /// heading's comment in a Chinese one.
    text: String,
    /// 1-based line number in its file.
    line: usize,
}

impl Heading {
    fn markdown(&self) -> String {
        format!("{} {}", "#".repeat(self.level), self.text)
    }

    fn key(&self) -> (usize, &str) {
        (self.level, &self.text)
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The lines outside fenced code blocks (``` or ~~~, indented or not), with their 1-based
/// numbers.
fn prose_lines(markdown: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<(char, usize)> = None;
    let mut lines = Vec::new();
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = trimmed.chars().next().filter(|&c| c == '`' || c == '~');
        // The marker is ASCII: its run's length in chars is its length in bytes.
        let run = marker.map_or(0, |m| trimmed.chars().take_while(|&c| c == m).count());
        match fence {
            Some((m, len)) => {
                if marker == Some(m) && run >= len && trimmed[run..].trim().is_empty() {
                    fence = None;
                }
            }
            None if run >= 3 => fence = Some((marker.unwrap(), run)),
            None => lines.push((i + 1, line)),
        }
    }
    lines
}

/// The ATX headings outside code blocks: `#` to `######` at the start of a line, then a
/// space. Returns (line number, level, the rest of the line, trimmed).
fn raw_headings(markdown: &str) -> Vec<(usize, usize, &str)> {
    prose_lines(markdown)
        .into_iter()
        .filter_map(|(number, line)| {
            let level = line.bytes().take_while(|&b| b == b'#').count();
            let rest = &line[level..];
            ((1..=6).contains(&level) && rest.starts_with(' '))
                .then(|| (number, level, rest.trim()))
        })
        .collect()
}

fn english_headings(markdown: &str) -> Vec<Heading> {
    raw_headings(markdown)
        .into_iter()
        .map(|(line, level, text)| Heading {
            level,
            text: text.to_string(),
            line,
        })
        .collect()
}

/// The English heading in a Chinese heading's trailing `<!-- … -->` comment, if it has one
/// after some translated text.
fn heading_comment(text: &str) -> Option<&str> {
    let body = text.strip_suffix("-->")?;
    let start = body.rfind("<!--")?;
    let english = body[start + 4..].trim();
    let translated = body[..start].trim();
    (!english.is_empty() && !translated.is_empty()).then_some(english)
}

/// A Chinese file's headings, with the English text from their comments, and the headings
/// that have no such comment: (line number, the heading as written).
fn chinese_headings(markdown: &str) -> (Vec<Heading>, Vec<(usize, String)>) {
    let mut headings = Vec::new();
    let mut uncommented = Vec::new();
    for (line, level, text) in raw_headings(markdown) {
        match heading_comment(text) {
            Some(english) => headings.push(Heading {
                level,
                text: english.to_string(),
                line,
            }),
            None => uncommented.push((line, format!("{} {}", "#".repeat(level), text))),
        }
    }
    (headings, uncommented)
}

/// The indices of a longest common subsequence of `a` and `b` (by level and text).
fn common_subsequence(a: &[Heading], b: &[Heading]) -> Vec<(usize, usize)> {
    let mut lengths = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lengths[i][j] = if a[i].key() == b[j].key() {
                lengths[i + 1][j + 1] + 1
            } else {
                lengths[i + 1][j].max(lengths[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut pairs = Vec::new();
    while i < a.len() && j < b.len() {
        if a[i].key() == b[j].key() {
            pairs.push((i, j));
            i += 1;
            j += 1;
        } else if lengths[i + 1][j] >= lengths[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    pairs
}

/// Compares an English file's headings with its translation's; returns one message per
/// problem, empty when the two follow each other heading by heading.
fn compare(english_name: &str, english: &str, chinese_name: &str, chinese: &str) -> Vec<String> {
    let en = english_headings(english);
    let (zh, uncommented) = chinese_headings(chinese);
    let mut problems: Vec<String> = uncommented
        .into_iter()
        .map(|(line, heading)| {
            format!(
                "{chinese_name}:{line}: heading `{heading}` has no `<!-- English heading -->` \
                 comment naming the heading of {english_name} it translates"
            )
        })
        .collect();
    let common = common_subsequence(&en, &zh);
    let (matched_en, matched_zh): (Vec<usize>, Vec<usize>) = common.into_iter().unzip();
    for (i, heading) in en.iter().enumerate() {
        if !matched_en.contains(&i) {
            problems.push(format!(
                "{chinese_name} lacks the section `{}` of {english_name}:{} (no heading \
                 there has the comment `<!-- {} -->` at level {}, in this place)",
                heading.markdown(),
                heading.line,
                heading.text,
                heading.level
            ));
        }
    }
    for (j, heading) in zh.iter().enumerate() {
        if !matched_zh.contains(&j) {
            problems.push(format!(
                "{chinese_name}:{}: the section `{}` (from its comment) is not in \
                 {english_name}, at least not in this place and at this level",
                heading.line,
                heading.markdown()
            ));
        }
    }
    if problems.is_empty() {
        let en: Vec<_> = en.iter().map(Heading::key).collect();
        let zh: Vec<_> = zh.iter().map(Heading::key).collect();
        assert_eq!(en, zh, "{english_name} and {chinese_name}");
    }
    problems
}

/// Whether the first non-blank line (the language switch) links to `target`.
fn switch_links_to(markdown: &str, target: &str) -> bool {
    markdown
        .lines()
        .find(|line| !line.trim().is_empty())
        .is_some_and(|line| line.contains(&format!("]({target})")))
}

#[test]
fn chinese_headings_follow_the_english_ones() {
    let root = root();
    let mut problems = Vec::new();
    for pair in &PAIRS {
        let english = read(&root.join(pair.english));
        let chinese = read(&root.join(pair.chinese));
        problems.extend(compare(pair.english, &english, pair.chinese, &chinese));
    }
    assert!(
        problems.is_empty(),
        "the Chinese documentation is out of step with the English one; translate the \
         section, or follow the renamed English heading in the Chinese heading and its \
         comment:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn each_language_links_to_the_other() {
    let root = root();
    let mut problems = Vec::new();
    for pair in &PAIRS {
        for (file, target) in [
            (pair.english, pair.english_links_to),
            (pair.chinese, pair.chinese_links_to),
        ] {
            if !switch_links_to(&read(&root.join(file)), target) {
                problems.push(format!(
                    "{file}: the first line (the language switch) does not link to ({target})"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The links `[text](target)` of a line, outside inline code.
fn link_targets(line: &str) -> Vec<&str> {
    let mut targets = Vec::new();
    for (k, segment) in line.split('`').enumerate() {
        if k % 2 == 1 {
            continue; // inside a code span
        }
        let mut rest = segment;
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            targets.push(&after[..end]);
            rest = &after[end..];
        }
    }
    targets
}

/// GitHub's anchor for a heading: lower case, punctuation other than `-` and `_` dropped,
/// spaces turned into `-`.
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|&c| c.is_alphanumeric() || c == '-' || c == '_' || c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors a file defines: explicit `id="…"` / `name="…"`, and the slugs of its
/// headings that have no comment (the slug of a heading with a comment differs between
/// renderers, so the Chinese files set explicit anchors where they are linked to).
fn anchors(markdown: &str) -> Vec<String> {
    let mut anchors: Vec<String> = raw_headings(markdown)
        .into_iter()
        .filter(|(_, _, text)| !text.contains("<!--"))
        .map(|(_, _, text)| slug(text))
        .collect();
    for attribute in ["id=\"", "name=\""] {
        for (at, _) in markdown.match_indices(attribute) {
            let value = &markdown[at + attribute.len()..];
            if let Some(end) = value.find('"') {
                anchors.push(value[..end].to_string());
            }
        }
    }
    anchors
}

#[test]
fn chinese_links_resolve() {
    let root = root();
    let mut problems = Vec::new();
    for pair in &PAIRS {
        let file = root.join(pair.chinese);
        let markdown = read(&file);
        for (number, line) in prose_lines(&markdown) {
            for target in link_targets(line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
                let linked = if path.is_empty() {
                    file.clone()
                } else {
                    file.parent().unwrap().join(path)
                };
                let anchored = fragment.is_empty()
                    || (linked.is_file() && anchors(&read(&linked)).iter().any(|a| a == fragment));
                if !linked.exists() {
                    problems.push(format!(
                        "{}:{number}: ({target}): no such file",
                        pair.chinese
                    ));
                } else if !anchored {
                    problems.push(format!(
                        "{}:{number}: ({target}): no anchor #{fragment} there",
                        pair.chinese
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The comparison itself, on texts made to differ: it must name what is missing on each
/// side, so that the tests above cannot pass by finding no headings at all.
#[test]
fn comparison_reports_missing_headings() {
    let english = "\
# Title

## Alpha

```sh
# a comment in a code block, not a heading
```

## Beta

### Gamma
";
    let chinese = "\
# 标题 <!-- Title -->

## 甲 <!-- Alpha -->

```sh
# a comment in a code block, not a heading
```

### 丙 <!-- Gamma -->

## 丁 <!-- Delta -->

## 戊
";
    assert_eq!(english_headings(english).len(), 4);
    let problems = compare("en.md", english, "zh.md", chinese);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("zh.md lacks the section `## Beta` of en.md:9")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("zh.md:11: the section `## Delta`") && p.contains("not in en.md")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("zh.md:13: heading `## 戊` has no `<!-- English heading -->`")),
        "{problems:#?}"
    );

    // A level that differs is a mismatch too.
    let problems = compare("en.md", "## Beta\n", "zh.md", "### 乙 <!-- Beta -->\n");
    assert_eq!(problems.len(), 2, "{problems:#?}");

    // And a faithful translation has none.
    let translated = "\
# 标题 <!-- Title -->

## 甲 <!-- Alpha -->

```sh
# a comment in a code block, not a heading
```

## 乙 <!-- Beta -->

### 丙 <!-- Gamma -->
";
    assert_eq!(
        compare("en.md", english, "zh.md", translated),
        Vec::<String>::new()
    );
    assert!(switch_links_to(
        "\n[English](../x.md) | 中文\n# x\n",
        "../x.md"
    ));
    assert!(!switch_links_to(
        "# x\n[English](../x.md) | 中文\n",
        "../x.md"
    ));
}
