//! What `/v1/health` says beyond "up": the conditions an operator has to act
//! on, each with what to do. A node with any of them answers `degraded`.

use crate::node::Node;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// A stable name for programs: `storage`, `clock`.
    pub what: &'static str,
    /// What is wrong and what to do, for people.
    pub detail: String,
}

/// The node's problems now. Blocks briefly while writes fail (it tries one),
/// so call it off async tasks then.
pub fn problems(node: &Node) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Some(why) = node.store().write_trouble() {
        problems.push(Problem {
            what: "storage",
            detail: format!(
                "writes to the node database fail ({why}): sales that need a record are refused \
                 with 503 until they work again. Free space on the disk that holds {}; the node \
                 recovers by itself",
                node.data_dir().display()
            ),
        });
    }
    problems.extend(crate::clock::problem(node.store()));
    problems
}
