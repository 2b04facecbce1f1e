//! An order-statistic B+tree of (score, member) elements: the ordered half of the sorted set's
//! `skiplist` encoding.
//!
//! It plays the part of Redis's skiplist with spans (insert, delete, rank and select in
//! O(log n), walking in order from any rank), but keeps up to `LEAF_MAX` elements side by side
//! in a leaf and `INNER_MAX` children per inner node, so a lookup in a million elements
//! touches four or five nodes instead of following a pointer per level per element. Nodes live
//! in one arena and link by index; freed slots are reused.
//!
//! Inner nodes keep, per child, the number of elements below it (what makes rank and select
//! logarithmic), and between children a separator: every element of the child on its left is
//! below it, every element of the child on its right is at or above it. A separator is a copy
//! of the first element of its right child when the split made it; deletions may remove that
//! element, and the separator still separates.
//!
//! Invariants (see `check`): elements strictly ascending by [`compare`]; every node but the
//! root non-empty; counts equal to the elements below; leaves linked in order both ways.

use super::zset::compare;
use super::CompactBytes;
use std::cmp::Ordering;

/// Elements per leaf before it splits: 64 elements of 32 bytes are 2 KB, a few cache lines
/// per binary search and a cheap shift on insert.
const LEAF_MAX: usize = 64;
/// Children per inner node before it splits.
const INNER_MAX: usize = 64;
/// A node that shrinks below this merges with a neighbour when both fit in one.
const LEAF_MIN: usize = LEAF_MAX / 4;
const INNER_MIN: usize = INNER_MAX / 4;
/// No node.
const NIL: u32 = u32::MAX;

type Element = (f64, CompactBytes);

#[derive(Debug, Clone)]
enum Node {
    Leaf {
        elements: Vec<Element>,
        previous: u32,
        next: u32,
    },
    Inner {
        children: Vec<u32>,
        /// `counts[i]`: elements in the subtree of `children[i]`.
        counts: Vec<u32>,
        /// `separators[i]` lies between `children[i]` and `children[i + 1]`.
        separators: Vec<Element>,
    },
    /// A slot on the free list.
    Free,
}

/// What an insert below a node asks of its parent: adopt `node`, right of the split child,
/// with `separator` between them.
struct Split {
    separator: Element,
    node: u32,
}

#[derive(Debug, Clone)]
pub struct Tree {
    nodes: Vec<Node>,
    free: Vec<u32>,
    root: u32,
    /// Levels above the leaves: 0 while the root is a leaf.
    height: u32,
    len: usize,
    first: u32,
    last: u32,
}

impl Default for Tree {
    fn default() -> Tree {
        Tree::new()
    }
}

impl Tree {
    pub fn new() -> Tree {
        Tree {
            nodes: vec![Node::Leaf {
                elements: Vec::new(),
                previous: NIL,
                next: NIL,
            }],
            free: Vec::new(),
            root: 0,
            height: 0,
            len: 0,
            first: 0,
            last: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn heap_bytes(&self) -> usize {
        let mut bytes = self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.free.capacity() * std::mem::size_of::<u32>();
        for node in &self.nodes {
            match node {
                Node::Leaf { elements, .. } => {
                    bytes += elements.capacity() * std::mem::size_of::<Element>();
                    bytes += elements
                        .iter()
                        .map(|(_, member)| member.heap_bytes())
                        .sum::<usize>();
                }
                Node::Inner {
                    children,
                    counts,
                    separators,
                } => {
                    bytes += (children.capacity() + counts.capacity()) * 4;
                    bytes += separators.capacity() * std::mem::size_of::<Element>();
                    bytes += separators
                        .iter()
                        .map(|(_, member)| member.heap_bytes())
                        .sum::<usize>();
                }
                Node::Free => {}
            }
        }
        bytes
    }

    fn allocate(&mut self, node: Node) -> u32 {
        match self.free.pop() {
            Some(index) => {
                debug_assert!(matches!(self.nodes[index as usize], Node::Free));
                self.nodes[index as usize] = node;
                index
            }
            None => {
                assert!(self.nodes.len() < NIL as usize, "arena index fits u32");
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        }
    }

    fn release(&mut self, index: u32) -> Node {
        self.free.push(index);
        std::mem::replace(&mut self.nodes[index as usize], Node::Free)
    }

    /// Elements in the subtree of `node`.
    fn subtree_len(&self, node: u32) -> u32 {
        match &self.nodes[node as usize] {
            Node::Leaf { elements, .. } => elements.len() as u32,
            Node::Inner { counts, .. } => counts.iter().sum(),
            Node::Free => unreachable!("a live node links only live nodes"),
        }
    }

    /// Entries of `node`: elements of a leaf, children of an inner node.
    fn fill(&self, node: u32) -> usize {
        match &self.nodes[node as usize] {
            Node::Leaf { elements, .. } => elements.len(),
            Node::Inner { children, .. } => children.len(),
            Node::Free => unreachable!("a live node links only live nodes"),
        }
    }

    /// Adds an element that is not present.
    pub fn insert(&mut self, score: f64, member: CompactBytes) {
        debug_assert!(!score.is_nan());
        if let Some(split) = self.insert_below(self.root, self.height, score, member) {
            let left = self.root;
            let counts = vec![self.subtree_len(left), self.subtree_len(split.node)];
            self.root = self.allocate(Node::Inner {
                children: vec![left, split.node],
                counts,
                separators: vec![split.separator],
            });
            self.height += 1;
        }
        self.len += 1;
    }

    fn insert_below(
        &mut self,
        node: u32,
        height: u32,
        score: f64,
        member: CompactBytes,
    ) -> Option<Split> {
        if height == 0 {
            let Node::Leaf { elements, .. } = &mut self.nodes[node as usize] else {
                unreachable!("height 0 is a leaf");
            };
            let position = elements.partition_point(|(candidate_score, candidate)| {
                compare(*candidate_score, candidate, score, &member) == Ordering::Less
            });
            debug_assert!(
                position == elements.len() || elements[position].1.as_slice() != member.as_slice()
            );
            elements.insert(position, (score, member));
            if elements.len() <= LEAF_MAX {
                return None;
            }
            return Some(self.split_leaf(node));
        }
        let (slot, child) = self.route(node, score, &member);
        let split = self.insert_below(child, height - 1, score, member);
        let moved = split.as_ref().map(|split| self.subtree_len(split.node));
        let Node::Inner {
            children,
            counts,
            separators,
        } = &mut self.nodes[node as usize]
        else {
            unreachable!("height above 0 is an inner node");
        };
        counts[slot] += 1;
        let split = split?;
        let moved = moved.unwrap_or(0);
        counts[slot] -= moved;
        children.insert(slot + 1, split.node);
        counts.insert(slot + 1, moved);
        separators.insert(slot, split.separator);
        if children.len() <= INNER_MAX {
            return None;
        }
        Some(self.split_inner(node))
    }

    /// The child of inner node `node` whose range holds (score, member), and its slot.
    fn route(&self, node: u32, score: f64, member: &[u8]) -> (usize, u32) {
        let Node::Inner {
            children,
            separators,
            ..
        } = &self.nodes[node as usize]
        else {
            unreachable!("height above 0 is an inner node");
        };
        let slot = separators.partition_point(|(separator_score, separator)| {
            compare(*separator_score, separator, score, member) != Ordering::Greater
        });
        (slot, children[slot])
    }

    fn split_leaf(&mut self, node: u32) -> Split {
        let Node::Leaf { elements, next, .. } = &mut self.nodes[node as usize] else {
            unreachable!("splitting a leaf");
        };
        let upper = elements.split_off(elements.len() / 2);
        let old_next = *next;
        let separator = upper[0].clone();
        let right = self.allocate(Node::Leaf {
            elements: upper,
            previous: node,
            next: old_next,
        });
        if let Node::Leaf { next, .. } = &mut self.nodes[node as usize] {
            *next = right;
        }
        if old_next == NIL {
            self.last = right;
        } else if let Node::Leaf { previous, .. } = &mut self.nodes[old_next as usize] {
            *previous = right;
        }
        Split {
            separator,
            node: right,
        }
    }

    fn split_inner(&mut self, node: u32) -> Split {
        let Node::Inner {
            children,
            counts,
            separators,
        } = &mut self.nodes[node as usize]
        else {
            unreachable!("splitting an inner node");
        };
        let middle = children.len() / 2;
        let right_children = children.split_off(middle);
        let right_counts = counts.split_off(middle);
        // separators[middle - 1] lies between the halves: it moves up.
        let right_separators = separators.split_off(middle);
        let separator = separators.pop().expect("an overfull node has separators");
        let right = self.allocate(Node::Inner {
            children: right_children,
            counts: right_counts,
            separators: right_separators,
        });
        Split {
            separator,
            node: right,
        }
    }

    /// Removes the element; false if it is not present.
    pub fn remove(&mut self, score: f64, member: &[u8]) -> bool {
        let removed = self.remove_below(self.root, self.height, score, member);
        if removed {
            self.len -= 1;
            if self.len == 0 {
                // Start over from one empty leaf rather than keep a spine of empty nodes.
                *self = Tree::new();
            } else {
                self.collapse_root();
            }
        }
        removed
    }

    fn remove_below(&mut self, node: u32, height: u32, score: f64, member: &[u8]) -> bool {
        if height == 0 {
            let Node::Leaf { elements, .. } = &mut self.nodes[node as usize] else {
                unreachable!("height 0 is a leaf");
            };
            let found = elements.binary_search_by(|(candidate_score, candidate)| {
                compare(*candidate_score, candidate, score, member)
            });
            return match found {
                Ok(position) => {
                    elements.remove(position);
                    true
                }
                Err(_) => false,
            };
        }
        let (slot, child) = self.route(node, score, member);
        if !self.remove_below(child, height - 1, score, member) {
            return false;
        }
        if let Node::Inner { counts, .. } = &mut self.nodes[node as usize] {
            counts[slot] -= 1;
        }
        self.rebalance(node, slot, height - 1);
        true
    }

    /// After child `slot` of `node` shrank: an empty child goes; a small one merges with a
    /// neighbour when both fit in one node.
    fn rebalance(&mut self, node: u32, slot: usize, child_height: u32) {
        let Node::Inner { children, .. } = &self.nodes[node as usize] else {
            unreachable!("rebalancing under an inner node");
        };
        let child = children[slot];
        let siblings = children.len();
        let fill = self.fill(child);
        let minimum = if child_height == 0 {
            LEAF_MIN
        } else {
            INNER_MIN
        };
        if fill == 0 {
            self.remove_empty_child(node, slot);
            return;
        }
        if fill >= minimum || siblings == 1 {
            return;
        }
        // Merge the pair (left, left + 1) that includes the small child.
        let left_slot = if slot + 1 < siblings { slot } else { slot - 1 };
        let (left, right) = (children[left_slot], children[left_slot + 1]);
        let maximum = if child_height == 0 {
            LEAF_MAX
        } else {
            INNER_MAX
        };
        if self.fill(left) + self.fill(right) > maximum {
            return;
        }
        let Node::Inner {
            children,
            counts,
            separators,
        } = &mut self.nodes[node as usize]
        else {
            unreachable!("rebalancing under an inner node");
        };
        children.remove(left_slot + 1);
        let right_count = counts.remove(left_slot + 1);
        counts[left_slot] += right_count;
        let separator = separators.remove(left_slot);
        self.merge_nodes(left, right, separator);
    }

    /// Unlinks and frees child `slot` of `node`, which holds nothing any more.
    fn remove_empty_child(&mut self, node: u32, slot: usize) {
        let Node::Inner {
            children,
            counts,
            separators,
        } = &mut self.nodes[node as usize]
        else {
            unreachable!("removing a child of an inner node");
        };
        let child = children.remove(slot);
        let count = counts.remove(slot);
        debug_assert_eq!(count, 0);
        if !separators.is_empty() {
            separators.remove(slot.saturating_sub(1));
        }
        if let Node::Leaf { previous, next, .. } = self.release(child) {
            self.link(previous, next);
        }
    }

    /// Makes `previous` and `next` neighbours in the leaf chain (either may be NIL).
    fn link(&mut self, previous: u32, next: u32) {
        if previous == NIL {
            self.first = next;
        } else if let Node::Leaf { next: after, .. } = &mut self.nodes[previous as usize] {
            *after = next;
        }
        if next == NIL {
            self.last = previous;
        } else if let Node::Leaf {
            previous: before, ..
        } = &mut self.nodes[next as usize]
        {
            *before = previous;
        }
    }

    /// Moves everything of `right` into `left`, its left neighbour, and frees `right`.
    fn merge_nodes(&mut self, left: u32, right: u32, separator: Element) {
        match self.release(right) {
            Node::Leaf {
                elements: moved,
                next: after,
                ..
            } => {
                if let Node::Leaf { elements, .. } = &mut self.nodes[left as usize] {
                    elements.extend(moved);
                }
                self.link(left, after);
            }
            Node::Inner {
                children: moved_children,
                counts: moved_counts,
                separators: moved_separators,
            } => {
                if let Node::Inner {
                    children,
                    counts,
                    separators,
                } = &mut self.nodes[left as usize]
                {
                    children.extend(moved_children);
                    counts.extend(moved_counts);
                    separators.push(separator);
                    separators.extend(moved_separators);
                }
            }
            Node::Free => unreachable!("merging a live node"),
        }
    }

    /// A root with a single child hands the root over to it.
    fn collapse_root(&mut self) {
        while self.height > 0 {
            let Node::Inner { children, .. } = &self.nodes[self.root as usize] else {
                unreachable!("height above 0 is an inner node");
            };
            if children.len() != 1 {
                break;
            }
            let child = children[0];
            self.release(self.root);
            self.root = child;
            self.height -= 1;
        }
    }

    /// How many elements satisfy `before`, a predicate monotone over the order (true, then
    /// false).
    pub fn count_before(&self, before: impl Fn(f64, &[u8]) -> bool) -> usize {
        let mut node = self.root;
        let mut count = 0usize;
        loop {
            match &self.nodes[node as usize] {
                Node::Leaf { elements, .. } => {
                    return count
                        + elements.partition_point(|(score, member)| before(*score, member));
                }
                Node::Inner {
                    children,
                    counts,
                    separators,
                } => {
                    let slot = separators.partition_point(|(score, member)| before(*score, member));
                    count += counts[..slot].iter().map(|&n| n as usize).sum::<usize>();
                    node = children[slot];
                }
                Node::Free => unreachable!("a live node links only live nodes"),
            }
        }
    }

    /// The leaf holding ascending rank `rank` and the position in it.
    fn locate(&self, rank: usize) -> Option<(u32, usize)> {
        if rank >= self.len {
            return None;
        }
        let mut node = self.root;
        let mut rank = rank;
        loop {
            match &self.nodes[node as usize] {
                Node::Leaf { elements, .. } => {
                    debug_assert!(rank < elements.len());
                    return Some((node, rank));
                }
                Node::Inner {
                    children, counts, ..
                } => {
                    let mut slot = 0;
                    while rank >= counts[slot] as usize {
                        rank -= counts[slot] as usize;
                        slot += 1;
                    }
                    node = children[slot];
                }
                Node::Free => unreachable!("a live node links only live nodes"),
            }
        }
    }

    /// The element at ascending rank `rank`.
    pub fn select(&self, rank: usize) -> Option<(f64, &[u8])> {
        let (leaf, position) = self.locate(rank)?;
        let Node::Leaf { elements, .. } = &self.nodes[leaf as usize] else {
            unreachable!("locate ends at a leaf");
        };
        let (score, member) = &elements[position];
        Some((*score, member.as_slice()))
    }

    /// Walks from ascending rank `rank`, upwards or (`reverse`) downwards.
    pub fn iter_from(&self, rank: usize, reverse: bool) -> Iter<'_> {
        let (leaf, position) = self.locate(rank).unwrap_or((NIL, 0));
        Iter {
            tree: self,
            leaf,
            position,
            reverse,
        }
    }

    /// Removes ascending ranks `start..end`, returning the removed members.
    pub fn remove_range(&mut self, start: usize, end: usize) -> Vec<CompactBytes> {
        debug_assert!(start <= end && end <= self.len);
        let mut removed = Vec::with_capacity(end - start);
        for _ in start..end {
            let Some((score, member)) = self.select(start) else {
                break;
            };
            let member = CompactBytes::new(member);
            let gone = self.remove(score, &member);
            debug_assert!(gone);
            removed.push(member);
        }
        removed
    }

    /// Checks every invariant of the module documentation (tests and debug assertions).
    pub fn check(&self) {
        let counted = self.check_node(self.root, self.height, None, None);
        assert_eq!(counted, self.len);
        // The leaf chain visits every element in order, both ways.
        let mut forward = Vec::with_capacity(self.len);
        let mut leaf = self.first;
        let mut previous_leaf = NIL;
        while leaf != NIL {
            let Node::Leaf {
                elements,
                previous,
                next,
            } = &self.nodes[leaf as usize]
            else {
                panic!("the leaf chain links only leaves");
            };
            assert_eq!(*previous, previous_leaf);
            forward.extend(elements.iter().map(|(score, member)| (*score, member)));
            previous_leaf = leaf;
            leaf = *next;
        }
        assert_eq!(previous_leaf, self.last);
        assert_eq!(forward.len(), self.len);
        for pair in forward.windows(2) {
            assert_eq!(
                compare(pair[0].0, pair[0].1, pair[1].0, pair[1].1),
                Ordering::Less
            );
        }
    }

    /// Checks the subtree of `node` against its bounds; returns its element count.
    fn check_node(
        &self,
        node: u32,
        height: u32,
        low: Option<&Element>,
        high: Option<&Element>,
    ) -> usize {
        let within = |(score, member): &Element| {
            low.is_none_or(|(low_score, low_member)| {
                compare(*low_score, low_member, *score, member) != Ordering::Greater
            }) && high.is_none_or(|(high_score, high_member)| {
                compare(*score, member, *high_score, high_member) == Ordering::Less
            })
        };
        match &self.nodes[node as usize] {
            Node::Leaf { elements, .. } => {
                assert_eq!(height, 0);
                assert!(node == self.root || !elements.is_empty());
                assert!(elements.iter().all(within));
                elements.len()
            }
            Node::Inner {
                children,
                counts,
                separators,
            } => {
                assert!(height > 0);
                assert!(!children.is_empty() && children.len() <= INNER_MAX);
                assert_eq!(children.len(), counts.len());
                assert_eq!(separators.len() + 1, children.len());
                let mut total = 0;
                for (slot, &child) in children.iter().enumerate() {
                    let child_low = if slot == 0 {
                        low
                    } else {
                        Some(&separators[slot - 1])
                    };
                    let child_high = separators.get(slot).or(high);
                    let below = self.check_node(child, height - 1, child_low, child_high);
                    assert_eq!(below, counts[slot] as usize);
                    total += below;
                }
                total
            }
            Node::Free => panic!("a live node links a freed slot"),
        }
    }
}

/// An in-order walk from a rank, one leaf at a time.
pub struct Iter<'a> {
    tree: &'a Tree,
    leaf: u32,
    position: usize,
    reverse: bool,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (f64, &'a [u8]);

    fn next(&mut self) -> Option<(f64, &'a [u8])> {
        if self.leaf == NIL {
            return None;
        }
        let Node::Leaf {
            elements,
            previous,
            next,
        } = &self.tree.nodes[self.leaf as usize]
        else {
            unreachable!("the walk stays on leaves");
        };
        let (score, member) = &elements[self.position];
        if self.reverse {
            if self.position == 0 {
                self.leaf = *previous;
                if self.leaf != NIL {
                    self.position = self.tree.fill(self.leaf) - 1;
                }
            } else {
                self.position -= 1;
            }
        } else if self.position + 1 == elements.len() {
            self.leaf = *next;
            self.position = 0;
        } else {
            self.position += 1;
        }
        Some((*score, member.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(index: u32) -> CompactBytes {
        CompactBytes::new(format!("member:{index:08}").as_bytes())
    }

    #[test]
    fn grows_splits_and_shrinks_back_to_a_leaf() {
        let mut tree = Tree::new();
        let count = 20_000u32;
        for index in 0..count {
            // A scattered order exercises splits everywhere, not only at the right edge.
            let key = (index * 7919) % count;
            tree.insert(f64::from(key % 100), member(key));
        }
        tree.check();
        assert!(tree.height >= 2);
        assert_eq!(tree.len(), count as usize);
        for rank in [0, 1, 63, 64, 65, 4095, 19_999] {
            let (score, found) = tree.select(rank).expect("in range");
            let before = tree.count_before(|s, m| compare(s, m, score, found) == Ordering::Less);
            assert_eq!(before, rank);
        }
        let ascending: Vec<_> = tree.iter_from(0, false).collect();
        let mut descending: Vec<_> = tree.iter_from(count as usize - 1, true).collect();
        descending.reverse();
        assert_eq!(ascending, descending);
        for index in 0..count {
            let key = (index * 104_729) % count;
            assert!(tree.remove(f64::from(key % 100), &member(key)));
            assert!(!tree.remove(f64::from(key % 100), &member(key)));
            if index % 997 == 0 {
                tree.check();
            }
        }
        tree.check();
        assert!(tree.is_empty());
        assert_eq!(tree.height, 0);
    }

    #[test]
    fn removes_ranges_from_the_middle() {
        let mut tree = Tree::new();
        for index in 0..5_000u32 {
            tree.insert(f64::from(index), member(index));
        }
        let removed = tree.remove_range(1_000, 3_500);
        assert_eq!(removed.len(), 2_500);
        assert_eq!(removed[0], member(1_000));
        tree.check();
        assert_eq!(tree.select(1_000).map(|(score, _)| score), Some(3_500.0));
        assert_eq!(
            tree.iter_from(999, false).nth(1).map(|(s, _)| s),
            Some(3_500.0)
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
        /// Random inserts, removals, range removals and queries against a sorted Vec, on
        /// enough elements for splits and merges at every level.
        #[test]
        fn matches_a_sorted_vec(ops in proptest::collection::vec((0u8..4, 0u32..6_000, 0u32..64), 1..3_000)) {
            let mut tree = Tree::new();
            let mut model: Vec<(f64, CompactBytes)> = Vec::new();
            for (kind, key, extra) in ops {
                let score = f64::from(key % 37);
                let name = member(key);
                let position = model.binary_search_by(|(s, m)| compare(*s, m, score, &name));
                match (kind, position) {
                    (0 | 1, Err(position)) => {
                        tree.insert(score, name.clone());
                        model.insert(position, (score, name));
                    }
                    (0 | 1, Ok(position)) | (2, Ok(position)) => {
                        proptest::prop_assert!(tree.remove(score, &name));
                        model.remove(position);
                    }
                    (2, Err(_)) => proptest::prop_assert!(!tree.remove(score, &name)),
                    _ => {
                        let start = (key as usize).min(model.len());
                        let end = (start + extra as usize * 3).min(model.len());
                        let removed = tree.remove_range(start, end);
                        let expected: Vec<_> = model.drain(start..end).map(|(_, m)| m).collect();
                        proptest::prop_assert_eq!(removed, expected);
                    }
                }
                proptest::prop_assert_eq!(tree.len(), model.len());
                if let Some(rank) = (extra as usize).checked_rem(model.len().max(1)) {
                    let got = tree.select(rank).map(|(s, m)| (s, m.to_vec()));
                    let want = model.get(rank).map(|(s, m)| (*s, m.to_vec()));
                    proptest::prop_assert_eq!(got, want);
                }
            }
            tree.check();
            let walked: Vec<_> = tree.iter_from(0, false).map(|(s, m)| (s, m.to_vec())).collect();
            let expected: Vec<_> = model.iter().map(|(s, m)| (*s, m.to_vec())).collect();
            proptest::prop_assert_eq!(walked, expected);
        }
    }
}
