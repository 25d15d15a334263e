//! Compiling a rule as kube-apiserver's CRD CEL environment would: the standard library, the
//! strings extension and the Kubernetes library functions this crate implements. A name the
//! environment does not declare fails compilation, as cel-go's checker makes it fail, so a rule
//! is never accepted and then silently skipped.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use cel::common::ast::{EntryExpr, Expr};
use cel::{Env, IdedExpr, Program};

/// The functions rules may call besides operators and macros (`has`, `all`, `exists`,
/// `exists_one`, `map`, `filter`, which expand when parsed).
const FUNCTIONS: &[&str] = &[
    // The standard library.
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "uint",
    "double",
    "string",
    "bool",
    "dyn",
    "duration",
    "timestamp",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getFullYear",
    "getHours",
    "getMilliseconds",
    "getMinutes",
    "getMonth",
    "getSeconds",
    // cel-go's strings extension, as Kubernetes enables it.
    "charAt",
    "indexOf",
    "lastIndexOf",
    "lowerAscii",
    "upperAscii",
    "replace",
    "split",
    "substring",
    "trim",
    "join",
    "format",
    // Kubernetes' IP, CIDR and URL libraries: the checks Gateway API's rules use.
    "isIP",
    "isCIDR",
    "isURL",
];

/// Identifiers that name types, usable in `type(x) == string`.
const TYPES: &[&str] = &[
    "bool",
    "bytes",
    "double",
    "duration",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "timestamp",
    "type",
    "uint",
];

fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        env.add_extension(cel::extensions::strings)
            .expect("the strings extension declares nothing twice");
        super::library::register(&mut env);
        Arc::new(env)
    })
    .clone()
}

/// The environment programs run in.
pub(super) fn environment() -> Arc<Env> {
    env()
}

/// A compiled expression and whether it reads `oldSelf` (a transition rule).
#[derive(Debug)]
pub(super) struct Compiled {
    pub program: Program,
    pub uses_old_self: bool,
}

/// Compiles `source` with `self` and `oldSelf` declared; the error is cel-go's detail text.
pub(super) fn compile(source: &str) -> Result<Compiled, String> {
    let program = env()
        .compile(source)
        .map_err(|e| format!("compilation failed: {e}"))?;
    let mut check = Check {
        declared: HashSet::from(["self", "oldSelf"]),
        source,
        program: &program,
        uses_old_self: false,
    };
    collect_loop_variables(program.expression(), &mut check.declared);
    check
        .walk(program.expression())
        .map_err(|e| format!("compilation failed: {e}"))?;
    Ok(Compiled {
        uses_old_self: check.uses_old_self,
        program,
    })
}

struct Check<'a> {
    declared: HashSet<&'a str>,
    source: &'a str,
    program: &'a Program,
    uses_old_self: bool,
}

impl Check<'_> {
    fn walk(&mut self, e: &IdedExpr) -> Result<(), String> {
        match &e.expr {
            Expr::Ident(name) => {
                self.uses_old_self |= name == "oldSelf";
                let known = self.declared.contains(name.as_str())
                    || TYPES.contains(&name.as_str())
                    || name.starts_with('@');
                if !known {
                    return Err(self.undeclared(e.id, name));
                }
            }
            Expr::Call(call) => {
                let operator = call.func_name.starts_with(['_', '!', '@', '-']);
                if !operator && !FUNCTIONS.contains(&call.func_name.as_str()) {
                    return Err(self.undeclared(e.id, &call.func_name));
                }
            }
            Expr::Struct(s) => return Err(self.undeclared(e.id, &s.type_name)),
            _ => {}
        }
        children(e).into_iter().try_for_each(|c| self.walk(c))
    }

    /// cel-go's checker error, with the line and a caret under the name.
    fn undeclared(&self, id: u64, name: &str) -> String {
        let start = self
            .program
            .source_info()
            .offset_for(id)
            .map_or(0, |(start, _)| start as usize);
        let before = &self.source[..start.min(self.source.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.chars().rev().take_while(|c| *c != '\n').count() + 1;
        let text = self.source.lines().nth(line - 1).unwrap_or_default();
        format!(
            "ERROR: <input>:{line}:{column}: undeclared reference to '{name}' (in container '')\n | {text}\n | {:.>column$}",
            "^"
        )
    }
}

/// The variables comprehensions bind (macro expansions and `all(x, …)` alike).
fn collect_loop_variables<'a>(e: &'a IdedExpr, out: &mut HashSet<&'a str>) {
    if let Expr::Comprehension(c) = &e.expr {
        out.insert(&c.iter_var);
        out.insert(&c.accu_var);
        if let Some(second) = &c.iter_var2 {
            out.insert(second);
        }
    }
    for c in children(e) {
        collect_loop_variables(c, out);
    }
}

/// The sub-expressions of `e`.
fn children(e: &IdedExpr) -> Vec<&IdedExpr> {
    match &e.expr {
        Expr::Call(call) => call
            .target
            .as_deref()
            .into_iter()
            .chain(&call.args)
            .collect(),
        Expr::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => map
            .entries
            .iter()
            .flat_map(|entry| match &entry.expr {
                EntryExpr::MapEntry(m) => vec![&m.key, &m.value],
                EntryExpr::StructField(f) => vec![&f.value],
            })
            .collect(),
        Expr::Select(select) => vec![&select.operand],
        Expr::Ident(_) | Expr::Literal(_) | Expr::Struct(_) | Expr::Unspecified => vec![],
    }
}
