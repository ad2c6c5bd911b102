//! The /stats page: one HTML page, no external assets, rendered on the
//! server so that it shows without JavaScript. A small inline script
//! fetches the page again every 2 s and swaps in its fresh parts; without
//! scripts a `<meta refresh>` reloads it every 5 s. Rates come from the
//! samples of `crate::traffic` (those of `tcpvsadm -L --rate`), so every
//! refresh shows the load of the last seconds. Every string an operator wrote (service names,
//! rule patterns, scheduler options) is escaped.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use super::snapshot::{ServerView, ServiceView, Snapshot};
use crate::protocols::http::date::civil_from_days;

pub const CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// How often the script fetches the page again, in milliseconds.
const REFRESH_MS: u32 = 2000;

const STYLE: &str = "\
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}\
header{background:#1d2330;color:#fff;padding:10px 20px}\
header h1{font-size:18px;margin:0}header p{margin:2px 0 0;color:#c5cad6}\
header .stale{color:#ffb0a8;font-weight:bold}\
main{padding:12px 20px}\
section{background:#fff;border:1px solid #d6d9e0;border-radius:6px;margin-bottom:16px;padding:8px 12px}\
h2{font-size:16px;margin:4px 0 8px}h2 .meta{font-weight:normal;color:#596175;font-size:13px}\
table{border-collapse:collapse;width:100%}\
th,td{padding:4px 8px;text-align:right;border-bottom:1px solid #eceef2;white-space:nowrap}\
th:first-child,td:first-child,td.state{text-align:left}\
th{font-size:12px;color:#596175;font-weight:600}\
tfoot td{font-weight:600;border-bottom:0}\
td.load{width:30%}\
.bar{background:#eceef2;height:10px;border-radius:5px;overflow:hidden}\
.bar div{background:#3a7bd5;height:100%}\
tr.up .state{color:#1e7b34}tr.down .state,tr.failed .state{color:#c0392b}\
tr.draining .state,tr.maint .state,tr.weight_zero .state{color:#9a6700}\
tr.down,tr.failed,tr.maint{background:#fdf2f1}\
.rules{margin:6px 0 2px;color:#596175;font-size:13px}\
code{background:#f0f1f4;padding:0 3px;border-radius:3px}";

/// The script: fetches the page and swaps in its summary and services,
/// counting the refreshes in the body's `data-refreshes` (for tests); a
/// failed fetch marks the page stale rather than blanking it.
const SCRIPT: &str = "\
(function(){\
var refreshes=0;\
function swap(doc){var swapped=0;['summary','stats'].forEach(function(id){\
var fresh=doc.getElementById(id),old=document.getElementById(id);\
if(fresh&&old){old.replaceWith(fresh);swapped++;}});\
if(swapped===2){refreshes++;document.body.setAttribute('data-refreshes',refreshes);}}\
function stale(){var s=document.getElementById('summary');\
if(s&&!s.querySelector('.stale')){var b=document.createElement('span');\
b.className='stale';b.textContent=' \\u00b7 tcpvsd not answering';s.appendChild(b);}}\
function refresh(){fetch(location.pathname,{cache:'no-store'})\
.then(function(r){if(!r.ok){throw r.status;}return r.text();})\
.then(function(text){swap(new DOMParser().parseFromString(text,'text/html'));})\
.catch(stale);}\
setInterval(refresh,INTERVAL);\
})();";

/// The page for `snapshot`, taken at `now`.
pub fn render(snapshot: &Snapshot, now: SystemTime) -> String {
    let mut page = String::with_capacity(4096 + 1024 * snapshot.services.len());
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>tcpvsd statistics</title>\
         <noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>\
         <style>{STYLE}</style></head><body>\n<header><h1>tcpvsd statistics</h1>\
         <p id=\"summary\">table generation {} \u{b7} {} client connections open \u{b7} \
         {} accepted \u{b7} as of ",
        snapshot.generation, snapshot.connections_open, snapshot.connections_accepted
    );
    write_time(now, &mut page);
    page.push_str("</p></header>\n<main id=\"stats\">\n");
    if snapshot.services.is_empty() {
        page.push_str("<p>No virtual service yet: add one with <code>tcpvsadm -A</code>.</p>\n");
    }
    for service in &snapshot.services {
        write_service(service, &mut page);
    }
    let script = SCRIPT.replace("INTERVAL", &REFRESH_MS.to_string());
    let _ = write!(page, "</main>\n<script>{script}</script>\n</body></html>\n");
    page
}

fn write_service(service: &ServiceView, page: &mut String) {
    let ident = escaped(&service.ident);
    let _ = write!(
        page,
        "<section class=\"service\" data-service=\"{ident}\"><h2>{ident} \
         <span class=\"meta\">{} {} \u{b7} {}",
        service.protocol,
        escaped(&service.listen),
        service.scheduler,
    );
    for option in &service.options {
        let _ = write!(page, " {}", escaped(option));
    }
    if !service.enabled {
        page.push_str(" \u{b7} disabled");
    }
    page.push_str(
        "</span></h2>\n<table><thead><tr><th>Server</th><th>State</th><th>Weight</th>\
         <th>Effective</th><th>Active</th><th>Load</th><th>Requests</th><th>Req/s</th>\
         <th>Failures</th></tr></thead><tbody>\n",
    );
    for server in &service.servers {
        write_server(server, page);
    }
    let _ = writeln!(
        page,
        "</tbody><tfoot><tr><td>total</td><td></td><td></td><td></td>\
         <td class=\"active\">{}</td><td></td><td class=\"requests\">{}</td>\
         <td class=\"rate\">{}</td><td></td></tr></tfoot></table>",
        service.active,
        service.requests,
        rate(service.rate)
    );
    if !service.rules.is_empty() {
        page.push_str("<div class=\"rules\">Rules, first match wins:");
        for rule in &service.rules {
            let _ = write!(page, " <code>{}</code> \u{2192}", escaped(&rule.conditions));
            for server in &rule.servers {
                let _ = write!(page, " {}", escaped(server));
            }
            page.push(';');
        }
        match &service.default {
            None => page.push_str(" else every server.</div>\n"),
            Some(set) => {
                page.push_str(" else");
                for server in set {
                    let _ = write!(page, " {}", escaped(server));
                }
                page.push_str(".</div>\n");
            }
        }
    }
    page.push_str("</section>\n");
}

fn write_server(server: &ServerView, page: &mut String) {
    let state = server.state;
    let class = state.name();
    let address = escaped(&server.address);
    // A server configured by name shows it, its address beside it.
    let shown = match &server.host {
        Some(host) => format!("{} <small>{address}</small>", escaped(host)),
        None => address.to_string(),
    };
    let _ = writeln!(
        page,
        "<tr class=\"server {class}\" data-server=\"{address}\"><td>{shown}</td>\
         <td class=\"state\">{}</td><td>{}</td><td>{}</td><td class=\"active\">{}{}</td>\
         <td class=\"load\"><div class=\"bar\" title=\"{:.0}%\"><div style=\"width:{:.1}%\"></div></div></td>\
         <td class=\"requests\">{}</td><td class=\"rate\">{}</td><td>{}</td></tr>",
        state.label(),
        server.weight,
        server.effective_weight,
        server.active,
        match server.max_conns {
            0 => String::new(),
            max => format!(" / {max}"),
        },
        server.load * 100.0,
        server.load * 100.0,
        server.requests,
        rate(server.rate),
        server.failures,
    );
}

/// A rate as the page shows it: `-` before there is one.
fn rate(rate: Option<u64>) -> String {
    match rate {
        Some(rate) => rate.to_string(),
        None => "-".to_string(),
    }
}

/// `HH:MM:SS UTC`.
fn write_time(now: SystemTime, page: &mut String) {
    let seconds = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (year, month, day) = civil_from_days(seconds / 86_400);
    let second = seconds % 86_400;
    let _ = write!(
        page,
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        second / 3600,
        second / 60 % 60,
        second % 60
    );
}

/// Text as HTML shows it, in an element or a quoted attribute: `&`, `<`,
/// `>`, `"` and `'` as character references.
pub fn escaped(text: &str) -> Cow<'_, str> {
    if !text.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::tests::table_from as table;
    use crate::server::ActiveGuard;
    use crate::table::Table;
    use std::time::Duration;

    fn page(table: &Table) -> String {
        let snapshot = Snapshot::of(table, &[], &Default::default(), &Default::default());
        render(&snapshot, UNIX_EPOCH + Duration::from_secs(1_796_662_633))
    }

    #[test]
    fn markup_in_operator_strings_is_shown_not_run() {
        assert_eq!(
            escaped("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert!(matches!(escaped("127.0.0.1:80"), Cow::Borrowed(_)));
        let table = table(
            "[[service]]\nident = \"web\"\nlisten = \"127.0.0.1:8080\"\n\
             scheduler = \"chash\"\n[service.sched_opts]\nkey = \"header:X-<b>\"\n\
             [[service.server]]\naddress = \"127.0.0.1:9001\"\n\
             [[service.rule]]\npattern = \"^/<img src=x onerror=alert(1)>\"\n\
             servers = [\"127.0.0.1:9001\"]\n\
             [[service.rule]]\nhost = \"^img<i>\"\nheader = \"X-Tenant: ^<a>\"\n\
             servers = [\"127.0.0.1:9001\"]\n",
        );
        let page = page(&table);
        // A rule's other conditions are shown, escaped, too.
        assert!(
            page.contains(
                "<code>host ^img&lt;i&gt; header x-tenant: ^&lt;a&gt;</code> \u{2192} 127.0.0.1:9001;"
            ),
            "{page}"
        );
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("X-<b>"), "{page}");
        assert!(
            page.contains(
                "<code>^/&lt;img src=x onerror=alert(1)&gt;</code> \u{2192} 127.0.0.1:9001;"
            ),
            "{page}"
        );
        assert!(page.contains("key=header:X-&lt;b&gt;"), "{page}");
    }

    #[test]
    fn a_narrowed_default_set_and_server_names_are_shown() {
        let table = table(
            "[[service]]\nident = \"web\"\nlisten = \"127.0.0.1:8080\"\n\
             default = [\"127.0.0.1:9002\"]\n\
             [[service.server]]\naddress = \"localhost:9001\"\n\
             [[service.server]]\naddress = \"127.0.0.1:9002\"\n\
             [[service.rule]]\npattern = \"^/a\"\nservers = [\"127.0.0.1:9001\"]\n",
        );
        let page = page(&table);
        assert!(
            page.contains("<code>^/a</code> \u{2192} 127.0.0.1:9001; else 127.0.0.1:9002.</div>"),
            "{page}"
        );
        assert!(
            page.contains("<td>localhost:9001 <small>127.0.0.1:9001</small></td>"),
            "{page}"
        );
    }

    #[test]
    fn every_server_has_a_row_with_its_state_counts_and_load() {
        let table = table(
            "[[service]]\nident = \"web\"\nlisten = \"127.0.0.1:8080\"\n\
             [[service.server]]\naddress = \"127.0.0.1:9001\"\nweight = 3\n\
             [[service.server]]\naddress = \"127.0.0.1:9002\"\nstate = \"drain\"\nmax_conns = 4\n\
             [[service]]\nident = \"media\"\nlisten = \"127.0.0.1:5540\"\nprotocol = \"rtsp\"\n\
             scheduler = \"lard\"\n[[service.server]]\naddress = \"[::1]:8554\"\n",
        );
        let web = &table.services[0].servers;
        for _ in 0..7 {
            web[0].state.count_request();
        }
        let _held = [
            ActiveGuard::new(web[0].state.clone()),
            ActiveGuard::new(web[1].state.clone()),
        ];
        let page = page(&table);
        let row = |server: &str| {
            let start = page
                .find(&format!("data-server=\"{server}\""))
                .unwrap_or_else(|| panic!("no row for {server}\n{page}"));
            let end = start + page[start..].find("</tr>").unwrap();
            page[start..end].to_string()
        };
        let first = row("127.0.0.1:9001");
        assert!(
            first.contains("<td class=\"state\">up</td><td>3</td><td>3</td>"),
            "{first}"
        );
        assert!(first.contains("<td class=\"requests\">7</td>"), "{first}");
        assert!(first.contains("width:100.0%"), "the busiest: {first}");
        let second = row("127.0.0.1:9002");
        assert!(second.contains(">draining<"), "{second}");
        assert!(
            second.contains("<td class=\"active\">1 / 4</td>"),
            "{second}"
        );
        assert!(second.contains("width:25.0%"), "1 of max_conns 4: {second}");
        assert!(row("[::1]:8554").contains(">up<"));
        assert!(page.contains("data-service=\"media\"><h2>media <span class=\"meta\">rtsp 127.0.0.1:5540 \u{b7} lard"), "{page}");
        assert!(page.contains("as of 2026-12-07 16:57:13 UTC"), "{page}");
        assert!(!page.contains("src=\"http"), "no external assets");
        assert!(page.contains("<script>") && page.contains("setInterval(refresh,2000)"));
    }
}
