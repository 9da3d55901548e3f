//! The log filter every command starts with.

/// Directives for tracing's `EnvFilter`: `RUST_LOG` when it is set, else
/// the command's default level; and rustls held to errors unless the
/// filter names rustls itself.
///
/// rustls warns once per connection about what a client did, such as an
/// IP address sent as SNI (wrk and some SDKs do): any client can make the
/// log grow a line per connection, and under a TLS load the formatting and
/// the write were a system call and several microseconds per handshake.
/// Handshake failures are still logged (debug) and counted by the server.
pub fn log_directives(rust_log: Option<&str>, default: &str) -> String {
    let spec = match rust_log.map(str::trim) {
        Some(s) if !s.is_empty() => s,
        _ => default,
    };
    if spec.split(',').any(names_rustls) {
        spec.to_owned()
    } else {
        format!("{spec},rustls=error")
    }
}

fn names_rustls(directive: &str) -> bool {
    let target = directive.split(['=', '[']).next().unwrap_or("").trim();
    target == "rustls" || target.starts_with("rustls::")
}

#[cfg(test)]
mod tests {
    use super::log_directives;

    #[test]
    fn rustls_is_held_to_errors_unless_named() {
        let cases = [
            ("unset: the default", None, "info,rustls=error"),
            ("blank: the default", Some("  "), "info,rustls=error"),
            ("a level", Some("warn"), "warn,rustls=error"),
            (
                "a crate",
                Some("redirector=debug"),
                "redirector=debug,rustls=error",
            ),
            (
                "rustls named",
                Some("debug,rustls=warn"),
                "debug,rustls=warn",
            ),
            (
                "a rustls module",
                Some("rustls::server=info"),
                "rustls::server=info",
            ),
            (
                "another crate with rustls in its name",
                Some("tokio_rustls=debug"),
                "tokio_rustls=debug,rustls=error",
            ),
        ];
        for (name, rust_log, want) in cases {
            assert_eq!(log_directives(rust_log, "info"), want, "{name}");
        }
    }
}
