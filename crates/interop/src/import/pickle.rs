//! A safe, non-executing reader for the pickles `torch.save` writes.
//!
//! Why not a crate: `serde-pickle` has no hook for persistent ids (`BINPERSID`, which is how
//! torch points at tensor storages), and candle's reader comes with all of candle. This
//! one knows only the opcodes torch emits (protocols 2–5) and builds plain values; a
//! *global* is only a name, and calling one (`REDUCE`, `NEWOBJ`) is allowed for an
//! allow-list that is turned into data here, never into code:
//!
//! - `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)` → [`Value::Tensor`];
//! - `torch._utils._rebuild_parameter(tensor, …)` → the tensor;
//! - `collections.OrderedDict()` → an empty dict.
//!
//! Anything else is refused with its name. Hostile input cannot make it allocate without
//! bound: memo copies are charged against a node budget, the stack and nesting are capped,
//! and lengths are checked against the bytes actually present.

use std::collections::HashMap;
use std::fmt;

/// Most values (nodes) a pickle may build, counting memo copies.
const NODE_BUDGET: usize = 20_000_000;
/// Deepest nesting of containers accepted.
const MAX_DEPTH: usize = 200;

/// A storage a tensor points into: `archive/data/<key>`, of element type `dtype`.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageRef {
    /// The record name inside the zip's `data/` folder.
    pub key: String,
    /// Element type.
    pub dtype: StorageDtype,
}

/// Element types of torch storages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageDtype {
    /// `torch.FloatStorage`
    F32,
    /// `torch.DoubleStorage`
    F64,
    /// `torch.HalfStorage`
    F16,
    /// `torch.BFloat16Storage`
    BF16,
    /// Integer or boolean storages (`Long`, `Int`, `Short`, `Char`, `Byte`, `Bool`): read
    /// past, never converted to weights.
    Other(&'static str, usize),
}

impl StorageDtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            StorageDtype::F32 => 4,
            StorageDtype::F64 => 8,
            StorageDtype::F16 | StorageDtype::BF16 => 2,
            StorageDtype::Other(_, n) => n,
        }
    }

    fn from_global(name: &str) -> Option<StorageDtype> {
        Some(match name {
            "torch.FloatStorage" => StorageDtype::F32,
            "torch.DoubleStorage" => StorageDtype::F64,
            "torch.HalfStorage" => StorageDtype::F16,
            "torch.BFloat16Storage" => StorageDtype::BF16,
            "torch.LongStorage" => StorageDtype::Other("int64", 8),
            "torch.IntStorage" => StorageDtype::Other("int32", 4),
            "torch.ShortStorage" => StorageDtype::Other("int16", 2),
            "torch.CharStorage" => StorageDtype::Other("int8", 1),
            "torch.ByteStorage" => StorageDtype::Other("uint8", 1),
            "torch.BoolStorage" => StorageDtype::Other("bool", 1),
            _ => return None,
        })
    }
}

/// A tensor as the pickle describes it (its bytes stay in the zip until asked for).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    /// Where the elements live.
    pub storage: StorageRef,
    /// First element's index in the storage.
    pub offset: usize,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Elements to step per dimension.
    pub stride: Vec<usize>,
}

/// A value built by the reader.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `None`
    None,
    /// `True` / `False`
    Bool(bool),
    /// An integer that fits in i64.
    Int(i64),
    /// A float.
    Float(f64),
    /// A `str`.
    Str(String),
    /// `bytes`
    Bytes(Vec<u8>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A list (or set).
    List(Vec<Value>),
    /// A dict or `OrderedDict`, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A global's name (`module.name`), which is only data until called.
    Global(String),
    /// A persistent id resolved to a storage.
    Storage(StorageRef),
    /// A tensor.
    Tensor(TensorRef),
}

impl Value {
    /// The entry of a dict under the string key `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items
                .iter()
                .rev()
                .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// A short description for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }

    /// Nodes in this value, stopping once past `cap`.
    fn nodes(&self, cap: usize) -> usize {
        let mut n = 1;
        let children: Box<dyn Iterator<Item = &Value>> = match self {
            Value::Tuple(v) | Value::List(v) => Box::new(v.iter()),
            Value::Dict(kv) => Box::new(kv.iter().flat_map(|(k, v)| [k, v])),
            _ => return 1,
        };
        for c in children {
            n += c.nodes(cap.saturating_sub(n));
            if n > cap {
                break;
            }
        }
        n
    }
}

/// Why a pickle was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct PickleError(pub String);

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PickleError {}

type Result<T> = std::result::Result<T, PickleError>;

fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(PickleError(msg.into()))
}

/// One stack slot: a MARK, or a value with its nesting depth (kept exact as containers are
/// built and filled, so hostile nesting is refused before any recursion can go deep).
enum Slot {
    Mark,
    Val(Value, usize),
}

/// The reader's state: input position, stack, memo and the node budget left.
struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Slot>,
    memo: HashMap<u32, (Value, usize)>,
    budget: usize,
}

/// Reads one pickle (up to `STOP`) and returns the value it builds.
pub fn read(data: &[u8]) -> Result<Value> {
    read_with_budget(data, NODE_BUDGET)
}

/// [`read`] with a node budget of `budget` values.
fn read_with_budget(data: &[u8], budget: usize) -> Result<Value> {
    let mut m = Machine {
        data,
        pos: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
        budget,
    };
    loop {
        let at = m.pos;
        let op = m.u8()?;
        if op == b'.' {
            return m.pop().map(|(v, _)| v);
        }
        m.step(op)
            .map_err(|e| PickleError(format!("at byte {at}: {}", e.0)))?;
    }
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            return err("the pickle ends early");
        };
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<usize> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]) as usize)
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn len64(&mut self) -> Result<usize> {
        usize::try_from(self.u64()?).or_else(|_| err("a length does not fit in memory"))
    }

    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.data[self.pos..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return err("a GLOBAL name has no line end");
        };
        let s = std::str::from_utf8(&rest[..n]).or_else(|_| err("a GLOBAL name is not UTF-8"))?;
        self.pos += n + 1;
        Ok(s)
    }

    fn string(&mut self, n: usize) -> Result<String> {
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).or_else(|_| err("a string is not UTF-8"))
    }

    fn charge(&mut self, nodes: usize) -> Result<()> {
        self.budget = match self.budget.checked_sub(nodes) {
            Some(b) => b,
            None => return err("the pickle builds too many values (refused as hostile)"),
        };
        Ok(())
    }

    /// Pushes a leaf value.
    fn push(&mut self, v: Value) -> Result<()> {
        self.push_at(v, 0)
    }

    /// Pushes a value of nesting depth `depth`.
    fn push_at(&mut self, v: Value, depth: usize) -> Result<()> {
        self.charge(1)?;
        if self.stack.len() >= 1_000_000 {
            return err("the pickle's stack grows past a million entries");
        }
        if depth > MAX_DEPTH {
            return err(format!("values nest deeper than {MAX_DEPTH}"));
        }
        self.stack.push(Slot::Val(v, depth));
        Ok(())
    }

    /// Pushes a container built from `items` (their depths decide its own).
    fn push_container(
        &mut self,
        items: Vec<(Value, usize)>,
        build: fn(Vec<Value>) -> Value,
    ) -> Result<()> {
        let depth = 1 + items.iter().map(|(_, d)| *d).max().unwrap_or(0);
        self.push_at(build(items.into_iter().map(|(v, _)| v).collect()), depth)
    }

    fn pop(&mut self) -> Result<(Value, usize)> {
        match self.stack.pop() {
            Some(Slot::Val(v, d)) => Ok((v, d)),
            Some(Slot::Mark) => err("a MARK where a value was expected"),
            None => err("the stack is empty"),
        }
    }

    fn top(&mut self) -> Result<(&mut Value, &mut usize)> {
        match self.stack.last_mut() {
            Some(Slot::Val(v, d)) => Ok((v, d)),
            _ => err("no value on the stack"),
        }
    }

    /// Pops everything down to the latest MARK (the MARK too).
    fn pop_mark(&mut self) -> Result<Vec<(Value, usize)>> {
        let Some(at) = self.stack.iter().rposition(|s| matches!(s, Slot::Mark)) else {
            return err("no MARK on the stack");
        };
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items
            .into_iter()
            .filter_map(|s| match s {
                Slot::Val(v, d) => Some((v, d)),
                Slot::Mark => None,
            })
            .collect())
    }

    /// A copy of the top value, charged against the node budget.
    fn copy_top(&mut self) -> Result<(Value, usize)> {
        let budget = self.budget;
        let (v, d) = self.top()?;
        let cost = v.nodes(budget);
        let copy = (v.clone(), *d);
        self.charge(cost)?;
        Ok(copy)
    }

    fn memo_put(&mut self, key: u32) -> Result<()> {
        let copy = self.copy_top()?;
        self.memo.insert(key, copy);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<()> {
        let Some((v, d)) = self.memo.get(&key) else {
            return err(format!("memo key {key} was never stored"));
        };
        let cost = v.nodes(self.budget);
        let (v, d) = (v.clone(), *d);
        self.charge(cost)?;
        self.push_at(v, d)
    }

    fn step(&mut self, op: u8) -> Result<()> {
        match op {
            0x80 => {
                let proto = self.u8()?;
                if proto > 5 {
                    return err(format!("pickle protocol {proto} is not supported"));
                }
            }
            0x95 => {
                self.u64()?; // FRAME: a length hint only
            }
            b'(' => self.stack.push(Slot::Mark),
            b'N' => self.push(Value::None)?,
            0x88 => self.push(Value::Bool(true))?,
            0x89 => self.push(Value::Bool(false))?,
            b'J' => {
                let v = self.u32()? as i32;
                self.push(Value::Int(v.into()))?
            }
            b'K' => {
                let v = self.u8()?;
                self.push(Value::Int(v.into()))?
            }
            b'M' => {
                let v = self.u16()?;
                self.push(Value::Int(v as i64))?
            }
            0x8a => {
                let n = self.u8()? as usize;
                let v = long_le(self.take(n)?)?;
                self.push(Value::Int(v))?
            }
            b'G' => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                self.push(Value::Float(f64::from_be_bytes(a)))?
            }
            b'X' => {
                let n = self.u32()? as usize;
                let s = self.string(n)?;
                self.push(Value::Str(s))?
            }
            0x8c => {
                let n = self.u8()? as usize;
                let s = self.string(n)?;
                self.push(Value::Str(s))?
            }
            0x8d => {
                let n = self.len64()?;
                let s = self.string(n)?;
                self.push(Value::Str(s))?
            }
            b'C' => {
                let n = self.u8()? as usize;
                let b = self.take(n)?.to_vec();
                self.push(Value::Bytes(b))?
            }
            b'B' => {
                let n = self.u32()? as usize;
                let b = self.take(n)?.to_vec();
                self.push(Value::Bytes(b))?
            }
            0x8e => {
                let n = self.len64()?;
                let b = self.take(n)?.to_vec();
                self.push(Value::Bytes(b))?
            }
            b')' => self.push(Value::Tuple(vec![]))?,
            b']' => self.push(Value::List(vec![]))?,
            b'}' => self.push(Value::Dict(vec![]))?,
            0x8f => self.push(Value::List(vec![]))?, // EMPTY_SET, kept as a list
            b't' => {
                let items = self.pop_mark()?;
                self.push_container(items, Value::Tuple)?
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                self.push_container(items, Value::Tuple)?
            }
            b'l' | 0x91 => {
                let items = self.pop_mark()?; // LIST, FROZENSET
                self.push_container(items, Value::List)?
            }
            b'd' => {
                let items = self.pop_mark()?;
                if items.len() % 2 != 0 {
                    return err("DICT has a key without a value");
                }
                self.push_container(items, |kv| Value::Dict(pairs(kv)))?
            }
            b'a' => {
                let v = self.pop()?;
                self.extend(vec![v])?
            }
            b'e' | 0x90 => {
                let items = self.pop_mark()?;
                self.extend(items)?
            }
            b's' => {
                let (v, dv) = self.pop()?;
                let (k, dk) = self.pop()?;
                self.set_items(vec![(k, v)], dv.max(dk))?
            }
            b'u' => {
                let items = self.pop_mark()?;
                if items.len() % 2 != 0 {
                    return err("SETITEMS has a key without a value");
                }
                let depth = items.iter().map(|(_, d)| *d).max().unwrap_or(0);
                let kv = pairs(items.into_iter().map(|(v, _)| v).collect());
                self.set_items(kv, depth)?
            }
            b'q' => {
                let k = self.u8()?;
                self.memo_put(k.into())?
            }
            b'r' => {
                let k = self.u32()?;
                self.memo_put(k)?
            }
            0x94 => {
                let k = self.memo.len() as u32;
                self.memo_put(k)?
            }
            b'h' => {
                let k = self.u8()?;
                self.memo_get(k.into())?
            }
            b'j' => {
                let k = self.u32()?;
                self.memo_get(k)?
            }
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let (v, d) = self.copy_top()?;
                self.push_at(v, d)?
            }
            b'c' => {
                let module = self.line()?.to_string();
                let name = self.line()?;
                self.push(Value::Global(format!("{module}.{name}")))?
            }
            0x93 => {
                let (name, _) = self.pop()?;
                let (module, _) = self.pop()?;
                match (module, name) {
                    (Value::Str(m), Value::Str(n)) => self.push(Value::Global(format!("{m}.{n}")))?,
                    _ => return err("STACK_GLOBAL needs two strings"),
                }
            }
            b'Q' => {
                let (pid, _) = self.pop()?;
                let storage = persistent_load(pid)?;
                self.push(Value::Storage(storage))?
            }
            b'R' | 0x81 => {
                let (args, _) = self.pop()?;
                let (callable, _) = self.pop()?;
                let v = call(callable, args)?;
                self.push(v)?
            }
            b'b' => {
                // BUILD: object state (e.g. an OrderedDict's `_metadata`); data only, dropped.
                self.pop()?;
                self.top()?;
            }
            other => {
                return err(format!(
                    "opcode 0x{other:02x} is not one torch writes for tensors and plain containers (refused, nothing executed)"
                ))
            }
        }
        Ok(())
    }

    /// APPEND(S): adds `items` to the list on top.
    fn extend(&mut self, items: Vec<(Value, usize)>) -> Result<()> {
        let inner = items.iter().map(|(_, d)| *d).max().unwrap_or(0);
        let (top, depth) = self.top()?;
        let Value::List(l) = top else {
            return err(format!("APPEND on a {}", top.kind()));
        };
        l.extend(items.into_iter().map(|(v, _)| v));
        *depth = (*depth).max(inner + 1);
        if *depth > MAX_DEPTH {
            return err(format!("values nest deeper than {MAX_DEPTH}"));
        }
        Ok(())
    }

    /// SETITEM(S): stores `kv` (of nesting depth `inner`) in the dict on top.
    fn set_items(&mut self, kv: Vec<(Value, Value)>, inner: usize) -> Result<()> {
        let (top, depth) = self.top()?;
        let Value::Dict(d) = top else {
            return err(format!("SETITEM on a {}", top.kind()));
        };
        // No de-duplication (quadratic on hostile input): `Value::get` reads the last entry,
        // which is what Python's later assignment leaves.
        d.extend(kv);
        *depth = (*depth).max(inner + 1);
        if *depth > MAX_DEPTH {
            return err(format!("values nest deeper than {MAX_DEPTH}"));
        }
        Ok(())
    }
}

/// Key/value pairs from a flat list (an odd last item is dropped; callers check first).
fn pairs(items: Vec<Value>) -> Vec<(Value, Value)> {
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    out
}

/// Little-endian two's-complement integer of up to 8 bytes (LONG1).
fn long_le(b: &[u8]) -> Result<i64> {
    if b.len() > 8 {
        return err("an integer is wider than 64 bits");
    }
    if b.is_empty() {
        return Ok(0);
    }
    let neg = b[b.len() - 1] & 0x80 != 0;
    let mut a = [if neg { 0xff } else { 0 }; 8];
    a[..b.len()].copy_from_slice(b);
    Ok(i64::from_le_bytes(a))
}

/// torch's persistent id: `('storage', torch.XStorage, key, location, numel)`.
fn persistent_load(pid: Value) -> Result<StorageRef> {
    let Value::Tuple(items) = pid else {
        return err(format!("a persistent id is a {}, not a tuple", pid.kind()));
    };
    match items.as_slice() {
        [Value::Str(tag), Value::Global(ty), Value::Str(key), _location, _numel]
            if tag == "storage" =>
        {
            let dtype = StorageDtype::from_global(ty)
                .ok_or_else(|| PickleError(format!("unknown storage type {ty}")))?;
            Ok(StorageRef {
                key: key.clone(),
                dtype,
            })
        }
        _ => err("a persistent id is not torch's ('storage', type, key, location, numel)"),
    }
}

fn usize_tuple(v: &Value, what: &str) -> Result<Vec<usize>> {
    let Value::Tuple(items) = v else {
        return err(format!("{what} is a {}, not a tuple", v.kind()));
    };
    items
        .iter()
        .map(|x| match x {
            Value::Int(n) if *n >= 0 => Ok(*n as usize),
            _ => err(format!("{what} holds something other than a size")),
        })
        .collect()
}

/// Applies an allow-listed callable to its arguments; anything else is refused by name.
fn call(callable: Value, args: Value) -> Result<Value> {
    let Value::Global(name) = callable else {
        return err(format!("a call on a {} (refused)", callable.kind()));
    };
    let Value::Tuple(args) = args else {
        return err(format!("{name} called without an argument tuple"));
    };
    match name.as_str() {
        "collections.OrderedDict" if args.is_empty() => Ok(Value::Dict(vec![])),
        "torch._utils._rebuild_tensor_v2" => rebuild_tensor(&args),
        "torch._utils._rebuild_parameter" => match args.into_iter().next() {
            Some(t @ Value::Tensor(_)) => Ok(t),
            _ => err("_rebuild_parameter without a tensor"),
        },
        _ => err(format!(
            "the pickle calls {name}, which is not a tensor or a plain container (refused; lmforge never executes pickle code)"
        )),
    }
}

fn rebuild_tensor(args: &[Value]) -> Result<Value> {
    let [Value::Storage(storage), Value::Int(offset), size, stride, ..] = args else {
        return err("_rebuild_tensor_v2 with unexpected arguments");
    };
    let shape = usize_tuple(size, "a tensor size")?;
    let stride = usize_tuple(stride, "a tensor stride")?;
    if shape.len() != stride.len() || *offset < 0 {
        return err("a tensor's size and stride disagree");
    }
    Ok(Value::Tensor(TensorRef {
        storage: storage.clone(),
        offset: *offset as usize,
        shape,
        stride,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_containers_numbers_and_strings() {
        // pickle.dumps({'a': [1, -2, 3.5, None, True], 'b': ('x', 300, 70000)}, protocol=2)
        let p: &[u8] = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01J\xfe\xff\xff\xffG@\x0c\x00\x00\x00\x00\x00\x00N\x88eX\x01\x00\x00\x00bq\x03X\x01\x00\x00\x00xq\x04M,\x01Jp\x11\x01\x00\x87q\x05u.";
        let v = read(p).unwrap();
        assert_eq!(
            v.get("a"),
            Some(&Value::List(vec![
                Value::Int(1),
                Value::Int(-2),
                Value::Float(3.5),
                Value::None,
                Value::Bool(true)
            ]))
        );
        assert_eq!(
            v.get("b"),
            Some(&Value::Tuple(vec![
                Value::Str("x".into()),
                Value::Int(300),
                Value::Int(70000)
            ]))
        );
    }

    #[test]
    fn refuses_code_it_does_not_know() {
        // pickle.dumps(os.system) + a call: cos\nsystem\n(S'echo hi'\ntR.
        let p: &[u8] = b"cos\nsystem\n(X\x07\x00\x00\x00echo hitR.";
        let e = read(p).unwrap_err().to_string();
        assert!(e.contains("os.system") && e.contains("refused"), "{e}");
        // an opcode outside the set (INST)
        let e = read(b"ios\nsystem\n.").unwrap_err().to_string();
        assert!(e.contains("0x69"), "{e}");
    }

    #[test]
    fn truncated_and_hostile_input_is_an_error_not_a_panic() {
        assert!(read(b"").is_err());
        assert!(read(b"\x80\x02X\xff\xff\xff\xff").is_err()); // string longer than the data
        assert!(read(b"\x80\x02h\x05.").is_err()); // memo key never stored
        assert!(read(b"\x80\x02u.").is_err()); // SETITEMS without MARK
        assert!(read(b"\x80\x02K\x01K\x02s.").is_err()); // SETITEM on an int
                                                         // a memo bomb: l = [x, x]; repeated → 2^n nodes, stopped by the budget
        let mut p = b"\x80\x02]q\x00".to_vec();
        for _ in 0..40 {
            p.extend_from_slice(b"h\x00h\x00\x86q\x00");
        }
        p.push(b'.');
        let e = read_with_budget(&p, 100_000).unwrap_err().to_string();
        assert!(e.contains("too many values"), "{e}");
        // nesting past the cap, through a list appended into itself level by level
        let mut deep = b"\x80\x02".to_vec();
        deep.extend(std::iter::repeat_n(b']', MAX_DEPTH + 2));
        deep.extend(std::iter::repeat_n(b'a', MAX_DEPTH + 1));
        deep.push(b'.');
        let e = read(&deep).unwrap_err().to_string();
        assert!(e.contains("nest deeper"), "{e}");
    }

    #[test]
    fn long1_is_twos_complement() {
        assert_eq!(long_le(&[0xff]).unwrap(), -1);
        assert_eq!(long_le(&[0x00, 0x01]).unwrap(), 256);
        assert_eq!(long_le(&[]).unwrap(), 0);
        assert!(long_le(&[0; 9]).is_err());
    }
}
