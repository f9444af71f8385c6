//! Start order of parts: a real topological sort (Kahn's algorithm) over declared
//! dependencies, ties broken by registration order so equal boards boot identically.
//!
//! Sorting with a comparator over direct edges is not enough (a dependent can come first when
//! the dependency is only transitive), which is why this is a graph algorithm.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::{Error, Result};

/// One part in the graph: its name and the names it depends on.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub name: String,
    pub deps: Vec<String>,
}

/// Returns node indices in start order. Fails on a dependency that names no node, and on a
/// cycle (naming the parts on it).
pub(crate) fn start_order(nodes: &[Node]) -> Result<Vec<usize>> {
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(nodes.len());
    for (i, node) in nodes.iter().enumerate() {
        if index.insert(node.name.as_str(), i).is_some() {
            return Err(Error::DuplicateName {
                name: node.name.clone(),
            });
        }
    }
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut waiting_on: Vec<usize> = vec![0; nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        let mut seen: Vec<usize> = Vec::new();
        for dep in &node.deps {
            let Some(&d) = index.get(dep.as_str()) else {
                return Err(Error::MissingDependency {
                    part: node.name.clone(),
                    missing: dep.clone(),
                });
            };
            if !seen.contains(&d) {
                seen.push(d);
                dependents[d].push(i);
                waiting_on[i] += 1;
            }
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..nodes.len())
        .filter(|&i| waiting_on[i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &dependent in &dependents[i] {
            waiting_on[dependent] -= 1;
            if waiting_on[dependent] == 0 {
                ready.push(Reverse(dependent));
            }
        }
    }
    if order.len() < nodes.len() {
        return Err(Error::DependencyCycle {
            cycle: find_cycle(nodes, &index, &waiting_on),
        });
    }
    Ok(order)
}

/// Walks dependencies among the nodes left unsorted until one repeats: that loop is a cycle.
fn find_cycle(nodes: &[Node], index: &HashMap<&str, usize>, waiting_on: &[usize]) -> Vec<String> {
    let Some(start) = (0..nodes.len()).find(|&i| waiting_on[i] > 0) else {
        return Vec::new();
    };
    let mut path: Vec<usize> = vec![start];
    let mut current = start;
    loop {
        let next = nodes[current]
            .deps
            .iter()
            .filter_map(|d| index.get(d.as_str()).copied())
            .find(|&d| waiting_on[d] > 0);
        let Some(next) = next else { return Vec::new() };
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cycle: Vec<String> =
                path[pos..].iter().map(|&i| nodes[i].name.clone()).collect();
            cycle.push(nodes[next].name.clone());
            return cycle;
        }
        path.push(next);
        current = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(spec: &[(&str, &[&str])]) -> Vec<Node> {
        spec.iter()
            .map(|(n, d)| Node {
                name: (*n).into(),
                deps: d.iter().map(|s| (*s).into()).collect(),
            })
            .collect()
    }

    fn names(spec: &[(&str, &[&str])]) -> Result<Vec<String>> {
        let nodes = graph(spec);
        Ok(start_order(&nodes)?
            .into_iter()
            .map(|i| nodes[i].name.clone())
            .collect())
    }

    #[test]
    fn dependencies_come_first_and_ties_keep_registration_order() {
        // "api" is registered first but depends on "db" only through "cache": a comparator
        // over direct edges would get this wrong.
        let order = names(&[
            ("api", &["cache"]),
            ("web", &[]),
            ("cache", &["db"]),
            ("db", &[]),
        ])
        .unwrap();
        assert_eq!(order, ["web", "db", "cache", "api"]);
        let order = names(&[("a", &[]), ("b", &[]), ("c", &[])]).unwrap();
        assert_eq!(order, ["a", "b", "c"]);
    }

    #[test]
    fn a_cycle_is_an_error_naming_its_parts() {
        let err = names(&[("x", &[]), ("a", &["b"]), ("b", &["c"]), ("c", &["a"])]).unwrap_err();
        let Error::DependencyCycle { cycle } = &err else {
            panic!("{err}")
        };
        assert_eq!(cycle.len(), 4, "{cycle:?}");
        assert_eq!(cycle.first(), cycle.last());
        for part in ["a", "b", "c"] {
            assert!(cycle.iter().any(|c| c == part), "{cycle:?} lacks {part}");
        }
        assert!(err.to_string().contains(" -> "));
        let err = names(&[("self", &["self"])]).unwrap_err();
        assert!(err.to_string().contains("self -> self"), "{err}");
    }

    #[test]
    fn a_missing_dependency_names_both_parts() {
        let err = names(&[("gate", &["storage-driver"])]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("'gate'") && text.contains("'storage-driver'"),
            "{text}"
        );
    }
}
