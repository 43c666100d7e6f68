-- The standard library of the Lua sandbox (lang/src/lua/stdlib.hpp),
-- embedded in the binary at build time (cmake/embed_text.cmake).
--
-- Written in Lua rather than C++ so that the instruction and memory limits
-- bound library calls like any other code, and so that no C++ object lives
-- across a Lua error (which longjmps). Everything here is deterministic: no
-- clock, no randomness, and tables are walked in sorted key order.
local G, null, pairs, protect = ...

local type, tostring, tonumber, error, select, next, pcall, rawequal,
      rawget, setmetatable, getmetatable =
      type, tostring, tonumber, error, select, next, pcall, rawequal,
      rawget, setmetatable, getmetatable
local string, table, math, utf8 = G.string, G.table, G.math, G.utf8
local find, sub, gsub, gmatch, match, rep, format, byte, lower, upper =
      string.find, string.sub, string.gsub, string.gmatch, string.match,
      string.rep, string.format, string.byte, string.lower, string.upper
local concat, sort, pack = table.concat, table.sort, table.pack
local floor, tointeger, mtype, huge =
      math.floor, math.tointeger, math.type, math.huge
local ulen, uchar, uoffset = utf8.len, utf8.char, utf8.offset

local max_depth = 200

-- Markers that say what an (empty) table becomes in JSON. They are shared
-- by every evaluation, so they are read-only.
local array_mt, object_mt = {}, {}
for _, mt in next, {array_mt, object_mt} do
  setmetatable(mt, {
    __newindex = function() error("json markers are read-only", 2) end,
    __metatable = false,
  })
  protect(mt)
end
local function new_array() return setmetatable({}, array_mt) end
local function new_object() return setmetatable({}, object_mt) end

-- ---------------------------------------------------------------------------
-- Helpers for messages and argument checks

local escapes = {['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b',
                 ['\f'] = '\\f', ['\n'] = '\\n', ['\r'] = '\\r',
                 ['\t'] = '\\t'}
for c = 0, 31 do
  local ch = string.char(c)
  if not escapes[ch] then escapes[ch] = format("\\u%04x", c) end
end

local function typename(v)
  if v == null then return "json.null" end
  return type(v)
end

-- "a string", "json.null", "nil", ...: a value's kind in a message.
local function kind(v)
  if v == null then return "json.null" end
  if v == nil then return "nil" end
  return "a " .. type(v)
end

-- A value for an error message: strings quoted, escaped and cut short
-- (never invalid UTF-8), other values by type.
local function show(v)
  if mtype(v) then return tostring(v) end
  if type(v) ~= "string" then return typename(v) end
  local n = ulen(v)
  if not n then return "a string that is not valid UTF-8" end
  if n > 40 then v = sub(v, 1, uoffset(v, 41) - 1) .. "..." end
  return "'" .. gsub(v, "[%z\1-\31]", escapes) .. "'"
end

local function arg_error(fname, i, want, v)
  return format("bad argument #%d to '%s' (%s expected, got %s)", i, fname,
                want, typename(v))
end

-- Errors name the line of the caller of the library function, so each
-- check raises at level `lvl`: 3 (the check, the library function, its
-- caller) unless a helper in between says otherwise.
local function check_string(fname, i, v, lvl)
  if type(v) ~= "string" then
    error(arg_error(fname, i, "string", v), lvl or 3)
  end
end
local function check_table(fname, i, v, lvl)
  if type(v) ~= "table" then
    error(arg_error(fname, i, "table", v), lvl or 3)
  end
end
local function check_function(fname, i, v)
  if type(v) ~= "function" then
    error(arg_error(fname, i, "function", v), 3)
  end
end
local function check_number(fname, i, v)
  if mtype(v) == nil then error(arg_error(fname, i, "number", v), 3) end
end
-- Integral floats (2.0, as JSON may carry them) count as integers.
local function check_integer(fname, i, v, default, lvl)
  if v == nil and default ~= nil then return default end
  local n = mtype(v) and tointeger(v)
  if n == nil then error(arg_error(fname, i, "integer", v), lvl or 3) end
  return n
end

-- Errors raised deep inside json.encode/decode travel as a private table
-- and are raised again at the caller of the public function, so that the
-- message names the caller's line.
local failure = {}
local function fail(msg) error({[failure] = msg}, 0) end
local function finish(ok, ...)
  if ok then return ... end
  local e = ...
  if type(e) == "table" and rawget(e, failure) then error(e[failure], 2) end
  error(e, 0)
end
local function guarded(fn)
  return function(...) return finish(pcall(fn, ...)) end
end

-- Number of elements when the keys of `t` are exactly 1..n, else nil.
local function seq_len(t)
  local n, max = 0, 0
  for k in next, t do
    if mtype(k) ~= "integer" or k < 1 then return nil end
    n = n + 1
    if k > max then max = k end
  end
  if n == max then return n end
  return nil
end

-- The length of `t` as a list (empty tables are lists unless marked as
-- objects), or nil for an object.
local function list_len(t)
  if getmetatable(t) == object_mt then return nil end
  return seq_len(t)
end

-- ---------------------------------------------------------------------------
-- json

local json = {null = null}

function json.array(t)
  if t == nil then return new_array() end
  check_table("json.array", 1, t)
  return setmetatable(t, array_mt)
end

function json.object(t)
  if t == nil then return new_object() end
  check_table("json.object", 1, t)
  return setmetatable(t, object_mt)
end

function json.type(v)
  local t = type(v)
  if v == null or v == nil then return "null" end
  if t == "table" then
    local mt = getmetatable(v)
    if mt == object_mt then return "object" end
    local n = seq_len(v)
    if n and (n > 0 or mt == array_mt) then return "array" end
    return "object"
  end
  if t == "boolean" or t == "number" or t == "string" then return t end
  return t
end

local function path_of(path, depth)
  if depth == 0 then return "" end
  local parts = {}
  for i = 1, depth do
    parts[i] = gsub(gsub(tostring(path[i]), "~", "~0"), "/", "~1")
  end
  return " at /" .. concat(parts, "/", 1, depth)
end

local function encode_fail(what, path, depth)
  fail("json.encode: " .. what .. path_of(path, depth))
end

local encode_value

local function encode_table(t, buf, n, depth, indent, path)
  if depth >= max_depth then
    fail("json.encode: tables nested deeper than " .. max_depth
         .. " levels (a cycle?)")
  end
  local newline, inner, outer = "", "", ""
  if indent then
    newline = "\n"
    inner = rep(" ", indent * (depth + 1))
    outer = rep(" ", indent * depth)
  end
  local mt = getmetatable(t)
  local len = mt ~= object_mt and seq_len(t) or nil
  if len and (len > 0 or mt == array_mt) then
    if len == 0 then n = n + 1; buf[n] = "[]"; return n end
    n = n + 1; buf[n] = "[" .. newline
    for i = 1, len do
      if i > 1 then n = n + 1; buf[n] = "," .. newline end
      n = n + 1; buf[n] = inner
      path[depth + 1] = i - 1
      n = encode_value(rawget(t, i), buf, n, depth + 1, indent, path)
    end
    n = n + 1; buf[n] = newline .. outer .. "]"
    return n
  end
  local keys, count = {}, 0
  for k in next, t do
    local key
    if type(k) == "string" then
      if not ulen(k) then
        encode_fail("a table key that is not valid UTF-8", path, depth)
      end
      key = k
    elseif mtype(k) == "integer" then
      key = format("%d", k)
    else
      encode_fail("a table key of type " .. type(k), path, depth)
    end
    count = count + 1
    keys[count] = {key, k}
  end
  if count == 0 then n = n + 1; buf[n] = "{}"; return n end
  sort(keys, function(a, b) return a[1] < b[1] end)
  n = n + 1; buf[n] = "{" .. newline
  local colon = indent and ": " or ":"
  for i = 1, count do
    local key = keys[i]
    if i > 1 then n = n + 1; buf[n] = "," .. newline end
    path[depth + 1] = key[1]
    n = n + 1
    buf[n] = inner .. '"' .. gsub(key[1], '[%z\1-\31"\\]', escapes) .. '"'
             .. colon
    n = encode_value(rawget(t, key[2]), buf, n, depth + 1, indent, path)
  end
  n = n + 1; buf[n] = newline .. outer .. "}"
  return n
end

function encode_value(v, buf, n, depth, indent, path)
  local t = type(v)
  n = n + 1
  if v == nil or v == null then
    buf[n] = "null"
  elseif t == "boolean" then
    buf[n] = v and "true" or "false"
  elseif mtype(v) == "integer" then
    buf[n] = format("%d", v)
  elseif t == "number" then
    if v ~= v or v == huge or v == -huge then
      encode_fail("a number that is not finite", path, depth)
    end
    -- The shortest text that reads back as the same number.
    local text = format("%.15g", v)
    if tonumber(text) ~= v then text = format("%.17g", v) end
    if not find(text, "[%.eEn]") then text = text .. ".0" end
    buf[n] = text
  elseif t == "string" then
    if not ulen(v) then
      encode_fail("a string that is not valid UTF-8", path, depth)
    end
    buf[n] = '"' .. gsub(v, '[%z\1-\31"\\]', escapes) .. '"'
  elseif t == "table" then
    n = encode_table(v, buf, n - 1, depth, indent, path)
  else
    encode_fail("a " .. t .. " has no JSON form", path, depth)
  end
  return n
end

json.encode = guarded(function(v, opts)
  local indent
  if opts ~= nil then
    if type(opts) ~= "table" then
      fail(arg_error("json.encode", 2, "table", opts))
    end
    if opts.indent ~= nil then
      indent = mtype(opts.indent) and tointeger(opts.indent)
      if not indent or indent < 0 or indent > 16 then
        fail("json.encode: indent must be an integer from 0 to 16")
      end
    end
  end
  local buf = {}
  local n = encode_value(v, buf, 0, 0, indent, {})
  return concat(buf, "", 1, n)
end)

local unescape = {['"'] = '"', ['\\'] = '\\', ['/'] = '/', b = '\b',
                  f = '\f', n = '\n', r = '\r', t = '\t'}

local function decode(s)
  local pos = 1

  local function where(p)
    local line, col = 1, p
    for nl in gmatch(sub(s, 1, p - 1), "()\n") do
      line = line + 1
      col = p - nl
    end
    return format("at line %d, column %d (byte %d)", line, col, p)
  end
  local function err(msg, p)
    fail("json.decode: " .. msg .. " " .. where(p or pos))
  end
  local function unexpected()
    local c = byte(s, pos)
    if c == nil then err("unexpected end of text") end
    if c >= 32 and c < 127 then
      err(format("unexpected character '%s'", string.char(c)))
    end
    err(format("unexpected byte 0x%02X", c))
  end
  local function skip()
    pos = match(s, "^[ \t\r\n]*()", pos)
  end

  local function str()
    local open = pos
    local i = pos + 1
    local parts, n = nil, 0
    while true do
      local j = find(s, '["\\%z\1-\31]', i)
      if not j then err("unterminated string", open) end
      local c = byte(s, j)
      if c == 34 then
        pos = j + 1
        if not parts then return sub(s, i, j - 1) end
        n = n + 1; parts[n] = sub(s, i, j - 1)
        return concat(parts, "", 1, n)
      elseif c == 92 then
        parts = parts or {}
        n = n + 1; parts[n] = sub(s, i, j - 1)
        local e = sub(s, j + 1, j + 1)
        if e == "u" then
          local hex = match(s, "^%x%x%x%x", j + 2)
          if not hex then err("bad \\u escape (4 hex digits expected)", j) end
          local cp = tonumber(hex, 16)
          i = j + 6
          if cp >= 0xD800 and cp <= 0xDBFF then
            local lo = match(s, "^\\u(%x%x%x%x)", i)
            local low = lo and tonumber(lo, 16)
            if not low or low < 0xDC00 or low > 0xDFFF then
              err("\\u escape of a lone surrogate", j)
            end
            cp = 0x10000 + (cp - 0xD800) * 0x400 + (low - 0xDC00)
            i = i + 6
          elseif cp >= 0xDC00 and cp <= 0xDFFF then
            err("\\u escape of a lone surrogate", j)
          end
          n = n + 1; parts[n] = uchar(cp)
        else
          local r = unescape[e]
          if not r then
            err("bad escape in string", j)
          end
          n = n + 1; parts[n] = r
          i = j + 2
        end
      else
        err("control character in string (escape it)", j)
      end
    end
  end

  local function num()
    local start = pos
    local int = match(s, "^-?%d+", pos)
    if not int then unexpected() end
    if match(int, "^-?0%d") then err("leading zero in number", start) end
    local e = pos + #int
    local frac = match(s, "^%.%d*", e)
    if frac then
      if #frac == 1 then err("digit expected after '.'", e + 1) end
      e = e + #frac
    end
    local exp = match(s, "^[eE][+-]?%d*", e)
    if exp then
      if not find(exp, "%d") then err("digit expected in exponent", e) end
      e = e + #exp
    end
    local v = tonumber(sub(s, start, e - 1))
    if v == huge or v == -huge then err("number out of range", start) end
    pos = e
    return v
  end

  local value
  function value(depth)
    skip()
    local c = byte(s, pos)
    if c == 123 or c == 91 then
      if depth >= max_depth then
        err("values nested deeper than " .. max_depth .. " levels")
      end
      pos = pos + 1
      skip()
      if c == 123 then
        local obj = new_object()
        if byte(s, pos) == 125 then pos = pos + 1; return obj end
        while true do
          if byte(s, pos) ~= 34 then
            if byte(s, pos) == nil then unexpected() end
            err("object key (a string in double quotes) expected")
          end
          local k = str()
          skip()
          if byte(s, pos) ~= 58 then err("':' expected after object key") end
          pos = pos + 1
          obj[k] = value(depth + 1)
          skip()
          local d = byte(s, pos)
          if d == 125 then pos = pos + 1; return obj end
          if d ~= 44 then
            if d == nil then unexpected() end
            err("',' or '}' expected")
          end
          pos = pos + 1
          skip()
        end
      end
      local arr, n = new_array(), 0
      if byte(s, pos) == 93 then pos = pos + 1; return arr end
      while true do
        n = n + 1
        arr[n] = value(depth + 1)
        skip()
        local d = byte(s, pos)
        if d == 93 then pos = pos + 1; return arr end
        if d ~= 44 then
          if d == nil then unexpected() end
          err("',' or ']' expected")
        end
        pos = pos + 1
      end
    elseif c == 34 then
      return str()
    elseif c == 116 and sub(s, pos, pos + 3) == "true" then
      pos = pos + 4
      return true
    elseif c == 102 and sub(s, pos, pos + 4) == "false" then
      pos = pos + 5
      return false
    elseif c == 110 and sub(s, pos, pos + 3) == "null" then
      pos = pos + 4
      return null
    end
    return num()
  end

  local ok, bad = ulen(s)
  if not ok then
    pos = bad
    err("invalid UTF-8")
  end
  local v = value(0)
  skip()
  if pos <= #s then err("unexpected text after the value") end
  return v
end

json.decode = guarded(function(s)
  if type(s) ~= "string" then fail(arg_error("json.decode", 1, "string", s))
  end
  return decode(s)
end)

-- ---------------------------------------------------------------------------
-- string

local function trim(s)
  local i = find(s, "%S")
  if not i then return "" end
  return match(s, "^.*%S", i)
end

function string.trim(s)
  check_string("string.trim", 1, s)
  return trim(s)
end

function string.ltrim(s)
  check_string("string.ltrim", 1, s)
  return (match(s, "^%s*(.*)$"))
end

function string.rtrim(s)
  check_string("string.rtrim", 1, s)
  if not find(s, "%S") then return "" end
  return (match(s, "^.*%S"))
end

function string.split(s, sep, pattern)
  check_string("string.split", 1, s)
  local out, n = new_array(), 0
  if sep == nil then
    for word in gmatch(s, "%S+") do n = n + 1; out[n] = word end
    return out
  end
  check_string("string.split", 2, sep)
  if sep == "" then error("string.split: the separator is empty", 2) end
  local plain = not pattern
  local init = 1
  while true do
    local i, j = find(s, sep, init, plain)
    if not i then break end
    if j < i then
      error("string.split: the separator pattern matches the empty string",
            2)
    end
    n = n + 1; out[n] = sub(s, init, i - 1)
    init = j + 1
  end
  n = n + 1; out[n] = sub(s, init)
  return out
end

function string.lines(s)
  check_string("string.lines", 1, s)
  local out, n = new_array(), 0
  if s == "" then return out end
  for line in gmatch(s, "([^\r\n]*)\r?\n?") do n = n + 1; out[n] = line end
  return out
end

function string.starts_with(s, prefix)
  check_string("string.starts_with", 1, s)
  check_string("string.starts_with", 2, prefix)
  return sub(s, 1, #prefix) == prefix
end

function string.ends_with(s, suffix)
  check_string("string.ends_with", 1, s)
  check_string("string.ends_with", 2, suffix)
  return suffix == "" or sub(s, -#suffix) == suffix
end

function string.contains(s, part)
  check_string("string.contains", 1, s)
  check_string("string.contains", 2, part)
  return find(s, part, 1, true) ~= nil
end

function string.replace(s, old, new, max)
  check_string("string.replace", 1, s)
  check_string("string.replace", 2, old)
  check_string("string.replace", 3, new)
  if max ~= nil then max = check_integer("string.replace", 4, max) end
  if old == "" then error("string.replace: the text to replace is empty", 2)
  end
  local pat = gsub(old, "[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")
  local repl = gsub(new, "%%", "%%%%")
  return (gsub(s, pat, repl, max))
end

function string.ulen(s)
  check_string("string.ulen", 1, s)
  local n, bad = ulen(s)
  if not n then
    error(format("string.ulen: invalid UTF-8 at byte %d", bad), 2)
  end
  return n
end

local function padder(fname, left)
  return function(s, width, ch)
    check_string(fname, 1, s)
    width = check_integer(fname, 2, width)
    if ch == nil then ch = " " end
    check_string(fname, 3, ch)
    if ulen(ch) ~= 1 then
      error(fname .. ": the fill must be one character, got " .. show(ch), 2)
    end
    local missing = width - (ulen(s) or #s)
    if missing <= 0 then return s end
    if left then return rep(ch, missing) .. s end
    return s .. rep(ch, missing)
  end
end

string.pad_left = padder("string.pad_left", true)
string.pad_right = padder("string.pad_right", false)

function string.join(list, sep)
  check_table("string.join", 1, list)
  if sep == nil then sep = "" end
  check_string("string.join", 2, sep)
  local n = list_len(list)
  if not n then error("string.join: argument #1 is not a list", 2) end
  local parts = {}
  for i = 1, n do
    local v = list[i]
    local t = type(v)
    if t == "string" then
      parts[i] = v
    elseif t == "number" or t == "boolean" then
      parts[i] = tostring(v)
    else
      error(format("string.join: item %d is %s, not a string", i,
                   kind(v)), 2)
    end
  end
  return concat(parts, sep, 1, n)
end

function string.match_all(s, pattern)
  check_string("string.match_all", 1, s)
  check_string("string.match_all", 2, pattern)
  local out, n = new_array(), 0
  local anchored = sub(pattern, 1, 1) == "^"
  local init, last_end = 1, -1
  while init <= #s + 1 do
    local r = pack(find(s, pattern, init))
    local i, j = r[1], r[2]
    if not i then break end
    if j + 1 == last_end then
      -- An empty match where the previous match ended: gmatch skips it.
      init = i + 1
    else
      n = n + 1
      if r.n == 2 then
        out[n] = sub(s, i, j)
      elseif r.n == 3 then
        out[n] = r[3]
      else
        local caps = new_array()
        for k = 3, r.n do caps[k - 2] = r[k] end
        out[n] = caps
      end
      if anchored then break end
      last_end = j + 1
      init = j + 1
    end
  end
  return out
end

-- ---------------------------------------------------------------------------
-- table

local function check_key(fname, i, key)
  local t = type(key)
  if t ~= "function" and t ~= "string" and mtype(key) ~= "integer" then
    error(arg_error(fname, i, "field name or function", key), 3)
  end
end

-- The key of `item`, the i-th element of a list: key(item, i) for a
-- function, else item[key]; json.null counts as nil. Raises at `lvl`.
local function item_key(fname, key, item, i, lvl)
  local k
  if type(key) == "function" then
    k = key(item, i)
  else
    if type(item) ~= "table" then
      error(format("%s: item %d is %s, not a table with the field %s",
                   fname, i, kind(item), show(key)), lvl)
    end
    k = item[key]
  end
  if k == null then return nil end
  return k
end

-- The keys of a list's items (the items themselves without `key`), all
-- numbers or all strings, nil where missing. Raises at `lvl`.
local function keys_of(fname, list, n, key, lvl)
  local keys, seen = {}, nil
  for i = 1, n do
    local k
    if key == nil then
      k = list[i]
      if k == null then k = nil end
    else
      k = item_key(fname, key, list[i], i, lvl + 1)
    end
    if k ~= nil then
      local t = type(k)
      if (t ~= "number" and t ~= "string") or k ~= k then
        error(format("%s: the %s of item %d is %s, not a number or string",
                     fname, key == nil and "value" or "key", i,
                     k ~= k and "NaN" or kind(k)), lvl)
      end
      if seen and seen ~= t then
        error(format("%s: cannot compare numbers with strings (item %d)",
                     fname, i), lvl)
      end
      seen = t
    end
    keys[i] = k
  end
  return keys
end

local function check_list(fname, i, t)
  check_table(fname, i, t, 4)
  local n = list_len(t)
  if not n then
    error(format("bad argument #%d to '%s' (list expected, got an object)",
                 i, fname), 3)
  end
  return n
end

function table.map(t, f)
  check_table("table.map", 1, t)
  check_function("table.map", 2, f)
  local n = list_len(t)
  if n then
    local out = new_array()
    for i = 1, n do
      local v = f(t[i], i)
      if v == nil then v = null end
      out[i] = v
    end
    return out
  end
  local out = new_object()
  for k, v in pairs(t) do out[k] = f(v, k) end
  return out
end

function table.filter(t, f)
  check_table("table.filter", 1, t)
  check_function("table.filter", 2, f)
  local n = list_len(t)
  if n then
    local out, m = new_array(), 0
    for i = 1, n do
      local v = t[i]
      if f(v, i) then m = m + 1; out[m] = v end
    end
    return out
  end
  local out = new_object()
  for k, v in pairs(t) do
    if f(v, k) then out[k] = v end
  end
  return out
end

function table.keys(t)
  check_table("table.keys", 1, t)
  local out, n = new_array(), 0
  for k in pairs(t) do n = n + 1; out[n] = k end
  return out
end

function table.values(t)
  check_table("table.values", 1, t)
  local out, n = new_array(), 0
  for _, v in pairs(t) do n = n + 1; out[n] = v end
  return out
end

function table.contains(t, x)
  check_table("table.contains", 1, t)
  for _, v in next, t do
    if v == x then return true end
  end
  return false
end

function table.sort_by(list, key, descending)
  local n = check_list("table.sort_by", 1, list)
  check_key("table.sort_by", 2, key)
  local keys = keys_of("table.sort_by", list, n, key, 3)
  local order = {}
  for i = 1, n do order[i] = i end
  -- Items without a key go last; equal keys keep their order (stable).
  sort(order, function(a, b)
    local ka, kb = keys[a], keys[b]
    if ka == nil or kb == nil then
      if ka == nil and kb == nil then return a < b end
      return kb == nil
    end
    if ka == kb then return a < b end
    if descending then return ka > kb end
    return ka < kb
  end)
  local out = new_array()
  for i = 1, n do out[i] = list[order[i]] end
  return out
end

function table.group_by(list, key)
  local n = check_list("table.group_by", 1, list)
  check_key("table.group_by", 2, key)
  local out = new_object()
  for i = 1, n do
    local item = list[i]
    local k = item_key("table.group_by", key, item, i, 3)
    local name
    local t = type(k)
    if k == nil then
      name = "null"
    elseif t == "string" then
      name = k
    elseif t == "number" or t == "boolean" then
      name = tostring(k)
    else
      error(format("table.group_by: the key of item %d is %s", i, kind(k)),
            2)
    end
    local group = out[name]
    if not group then
      group = new_array()
      out[name] = group
    end
    group[#group + 1] = item
  end
  return out
end

function table.sum(list, key)
  local n = check_list("table.sum", 1, list)
  if key ~= nil then check_key("table.sum", 2, key) end
  local total = 0
  for i = 1, n do
    local v = list[i]
    if key ~= nil then v = item_key("table.sum", key, v, i, 3) end
    if mtype(v) == nil then
      error(format("table.sum: the %s of item %d is %s, not a number",
                   key == nil and "value" or "key", i, kind(v)), 2)
    end
    total = total + v
  end
  return total
end

local function extreme(fname, better)
  return function(list, key)
    local n = check_list(fname, 1, list)
    if key ~= nil then check_key(fname, 2, key) end
    local keys = keys_of(fname, list, n, key, 3)
    local best
    for i = 1, n do
      local k = keys[i]
      if k == nil and key == nil then
        error(format("%s: item %d is json.null, not a number or string",
                     fname, i), 2)
      end
      if k ~= nil and (best == nil or better(k, keys[best])) then
        best = i
      end
    end
    if best == nil then return nil end
    if key == nil then return keys[best] end
    return list[best]
  end
end

table.min = extreme("table.min", function(a, b) return a < b end)
table.max = extreme("table.max", function(a, b) return a > b end)

-- ---------------------------------------------------------------------------
-- number

local number = {}

-- "1,234" (a single comma and three digits) reads as thousands, "1,5" as a
-- decimal comma; a single "." is a decimal point; with both, the last one
-- is the decimal separator.
local function decimal_of(body)
  local last_dot = match(body, ".*()%.")
  local last_comma = match(body, ".*(),")
  if last_dot and last_comma then
    return last_dot > last_comma and "." or ","
  end
  if last_dot then
    return select(2, gsub(body, "%.", "")) == 1 and "." or nil
  end
  if last_comma then
    if select(2, gsub(body, ",", "")) == 1
       and (not match(body, ",%d%d%d$") or match(body, "^0,")) then
      return ","
    end
  end
  return nil
end

-- Digits of an integer part, which may group its digits by three with one
-- kind of separator (not the decimal one), or nil.
local function integer_digits(int, decimal)
  if int == "" then return "0" end
  if match(int, "^%d+$") then return int end
  local sep = match(int, "%D")
  if sep == decimal then return nil end
  local rest = match(int, "^%d%d?%d?(%D.*)$")
  if not rest or gsub(rest, "%" .. sep .. "%d%d%d", "") ~= "" then
    return nil
  end
  return (gsub(int, "%" .. sep, ""))
end

local function affix_ok(a)
  local letters = gsub(a, "[%s%$%+%-%%%.\128-\255]", "")
  return match(letters, "^%a?%a?%a?$") ~= nil
end

function number.parse(s, opts)
  if mtype(s) then return s end
  check_string("number.parse", 1, s)
  local decimal
  if opts ~= nil then
    check_table("number.parse", 2, opts)
    decimal = opts.decimal
    if decimal ~= nil and decimal ~= "." and decimal ~= "," then
      error("number.parse: opts.decimal must be '.' or ','", 2)
    end
  end
  local t = trim(s)
  local negative = false
  local inner = match(t, "^%((.*)%)$")
  if inner then negative = true; t = trim(inner) end
  local pre, body, post = match(t, "^(.-)(%.?%d[%d%.,' ]*)(.-)$")
  if not pre then return nil end
  local spaces = match(body, " *$")
  if #spaces > 0 then
    post = spaces .. post
    body = sub(body, 1, #body - #spaces)
  end
  if find(post, "%d") or not find(body, "%d$") then return nil end
  if not affix_ok(pre) or not affix_ok(post) then return nil end
  local minus = select(2, gsub(pre, "%-", "")) + select(2, gsub(post, "%-",
                                                               ""))
  if minus > 1 or (negative and minus > 0) then return nil end
  if minus == 1 then negative = true end
  decimal = decimal or decimal_of(body)
  local int, frac = body, nil
  if decimal then
    local at = match(body, ".*()%" .. decimal)
    if at then
      int, frac = sub(body, 1, at - 1), sub(body, at + 1)
      if not match(frac, "^%d+$") then return nil end
    end
  end
  local digits = integer_digits(int, decimal)
  if not digits then return nil end
  local v
  if frac then
    v = tonumber(digits .. "." .. frac)
  else
    v = tonumber(digits)
  end
  if negative then v = -v end
  return v
end

local function check_decimals(fname, i, n)
  n = check_integer(fname, i, n, 0, 4)
  if n < -15 or n > 15 then
    error(fname .. ": decimals must be from -15 to 15", 3)
  end
  return n
end

local function round(x, n)
  if mtype(x) == "integer" and n >= 0 then return x end
  if x ~= x or x == huge or x == -huge then return nil end
  local m = 10.0 ^ n
  -- %.15g drops the binary noise of x * m (1.005 * 100 = 100.49999...).
  local v = tonumber(format("%.15g", x * m))
  local r
  if v >= 0 then r = floor(v + 0.5) else r = -floor(-v + 0.5) end
  r = r / m
  if n <= 0 then return tointeger(r) or r end
  return r
end

function number.round(x, n)
  check_number("number.round", 1, x)
  n = check_decimals("number.round", 2, n)
  local r = round(x, n)
  if r == nil then error("number.round: the number is not finite", 2) end
  return r
end

function number.format(x, n, opts)
  check_number("number.format", 1, x)
  n = check_decimals("number.format", 2, n)
  if n < 0 then error("number.format: decimals must be from 0 to 15", 2) end
  local thousands, point = ",", "."
  if opts ~= nil then
    check_table("number.format", 3, opts)
    if opts.thousands ~= nil then
      check_string("number.format", 3, opts.thousands)
      thousands = opts.thousands
    end
    if opts.decimal ~= nil then
      check_string("number.format", 3, opts.decimal)
      point = opts.decimal
    end
  end
  local r = round(x, n)
  if r == nil then error("number.format: the number is not finite", 2) end
  local text = format("%." .. n .. "f", r)
  local sign, int, frac = match(text, "^(-?)(%d+)%.?(%d*)$")
  if not int then return text end
  if tonumber(text) == 0 then sign = "" end
  local head = #int % 3
  if head == 0 then head = 3 end
  local groups, g = {sub(int, 1, head)}, 1
  for i = head + 1, #int, 3 do g = g + 1; groups[g] = sub(int, i, i + 2) end
  local out = sign .. concat(groups, thousands, 1, g)
  if frac ~= "" then out = out .. point .. frac end
  return out
end

-- ---------------------------------------------------------------------------
-- date (proleptic Gregorian calendar, dates only, no clock)

local date = {}

local month_names = {"January", "February", "March", "April", "May", "June",
                     "July", "August", "September", "October", "November",
                     "December"}
local day_names = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                   "Saturday", "Sunday"}
local month_of, is_day_name = {}, {}
for i, name in next, month_names do
  month_of[lower(name)] = i
  month_of[lower(sub(name, 1, 3))] = i
end
month_of.sept = 9
for _, name in next, day_names do
  is_day_name[lower(name)] = true
  is_day_name[lower(sub(name, 1, 3))] = true
end

local function is_leap(y)
  return y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)
end

local function month_days(y, m)
  if m == 2 then return is_leap(y) and 29 or 28 end
  if m == 4 or m == 6 or m == 9 or m == 11 then return 30 end
  return 31
end

local function valid(y, m, d)
  return y >= 1 and y <= 9999 and m >= 1 and m <= 12 and d >= 1
         and d <= month_days(y, m)
end

-- Days since 1970-01-01 and back (H. Hinnant's civil calendar algorithms).
local function to_days(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

local function from_days(z)
  z = z + 719468
  local era = z // 146097
  local doe = z - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local d = doy - (153 * mp + 2) // 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, d
end

local function iso(y, m, d)
  return format("%04d-%02d-%02d", y, m, d)
end

-- The year, month and day of a "YYYY-MM-DD" argument, or an error at the
-- caller of the public function.
local function ymd(fname, i, s)
  if type(s) ~= "string" then error(arg_error(fname, i, "string", s), 3) end
  local y, m, d = match(s, "^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if not y or not valid(y, m, d) then
    error(format("%s: %s is not a date (YYYY-MM-DD)", fname, show(s)), 3)
  end
  return y, m, d
end

local function from_day_number(fname, z)
  local y, m, d = from_days(z)
  if y < 1 or y > 9999 then
    error(fname .. ": the result is outside the years 1 to 9999", 3)
  end
  return iso(y, m, d)
end

local function full_year(text)
  local y = tonumber(text)
  if #text == 2 then return y < 70 and 2000 + y or 1900 + y end
  if #text == 4 then return y end
  return nil
end

local function checked(y, m, d, s)
  if not y or not m or not d then
    return nil, show(s) .. " is not a date in a known format"
  end
  if not valid(y, m, d) then
    return nil, format("%s is not a valid date (no day %d in %s %d)",
                       show(s), d, month_names[m] or "month " .. m, y)
  end
  return iso(y, m, d)
end

function date.parse(s, order)
  check_string("date.parse", 1, s)
  if order ~= nil and order ~= "dmy" and order ~= "mdy" then
    error("date.parse: order must be 'dmy' or 'mdy'", 2)
  end
  local t = lower(trim(s))
  -- A leading weekday name ("Friday, 15 March 2024") says nothing more.
  local word, rest = match(t, "^(%a+)%.?,?%s+(.*)$")
  if word and is_day_name[word] then t = rest end

  -- 2024-03-15, 2024/3/15, 2024.03.15, optionally followed by a time of
  -- day ("T10:30:00Z", " 10:30")
  local y, m, d = match(t, "^(%d%d%d%d)[%-/%.](%d%d?)[%-/%.](%d%d?)%f[%D]")
  if y then
    local tail = sub(t, #match(t, "^%d+.%d+.%d+") + 1)
    if tail == "" or find(tail, "^[t%s]%d%d?:%d%d") then
      return checked(tonumber(y), tonumber(m), tonumber(d), s)
    end
    return checked(nil, nil, nil, s)
  end
  y, m, d = match(t, "^(%d%d%d%d)(%d%d)(%d%d)$")
  if y then return checked(tonumber(y), tonumber(m), tonumber(d), s) end

  -- 15/03/2024, 03/15/2024, 15.03.24, 15-03-2024
  local a, _, b, year = match(t, "^(%d%d?)([%-/%.])(%d%d?)%2(%d+)$")
  if a then
    y = full_year(year)
    a, b = tonumber(a), tonumber(b)
    if not y then return checked(nil, nil, nil, s) end
    local day_first = order ~= "mdy"
    if day_first and b > 12 and a <= 12 then day_first = false end
    if not day_first and a > 12 and b <= 12 then day_first = true end
    if day_first then return checked(y, b, a, s) end
    return checked(y, a, b, s)
  end

  -- March 15, 2024 / 15 Mar 2024 / 15-Mar-24 / 2024 Mar 15 / Mar. 15th
  local words = gsub(t, "(%d)[snrt][tdh]%f[%A]", "%1")
  words = trim(gsub(gsub(words, "[,%.%-/]", " "), "%s+", " "))
  local p, q, r = match(words, "^(%S+) (%S+) (%S+)$")
  if not p then return checked(nil, nil, nil, s) end
  if month_of[p] and match(q, "^%d%d?$") and match(r, "^%d+$") then
    return checked(full_year(r), month_of[p], tonumber(q), s)
  end
  if month_of[q] and match(p, "^%d%d?$") and match(r, "^%d+$") then
    return checked(full_year(r), month_of[q], tonumber(p), s)
  end
  if month_of[q] and match(p, "^%d%d%d%d$") and match(r, "^%d%d?$") then
    return checked(tonumber(p), month_of[q], tonumber(r), s)
  end
  return checked(nil, nil, nil, s)
end

local format_codes = {
  Y = function(y) return format("%04d", y) end,
  y = function(y) return format("%02d", y % 100) end,
  m = function(_, m) return format("%02d", m) end,
  d = function(_, _, d) return format("%02d", d) end,
  e = function(_, _, d) return tostring(d) end,
  B = function(_, m) return month_names[m] end,
  b = function(_, m) return sub(month_names[m], 1, 3) end,
  A = function(y, m, d) return day_names[(to_days(y, m, d) + 3) % 7 + 1] end,
  a = function(y, m, d)
    return sub(day_names[(to_days(y, m, d) + 3) % 7 + 1], 1, 3)
  end,
  u = function(y, m, d) return tostring((to_days(y, m, d) + 3) % 7 + 1) end,
  j = function(y, m, d)
    return format("%03d", to_days(y, m, d) - to_days(y, 1, 1) + 1)
  end,
  ["%"] = function() return "%" end,
}

function date.format(s, fmt)
  local y, m, d = ymd("date.format", 1, s)
  check_string("date.format", 2, fmt)
  local out, n, i = {}, 0, 1
  while true do
    local at = find(fmt, "%", i, true)
    if not at then break end
    local code = sub(fmt, at + 1, at + 1)
    local f = format_codes[code]
    if not f then
      local what = match(code, "^[%w%p ]$") and "'%" .. code .. "'"
                   or "a lone '%'"
      error("date.format: unknown format code " .. what .. " (known: %Y %y "
            .. "%m %d %e %B %b %A %a %u %j, and %% for %)", 2)
    end
    n = n + 1; out[n] = sub(fmt, i, at - 1)
    n = n + 1; out[n] = f(y, m, d)
    i = at + 2
  end
  n = n + 1; out[n] = sub(fmt, i)
  return concat(out, "", 1, n)
end

function date.add_days(s, days)
  local y, m, d = ymd("date.add_days", 1, s)
  days = check_integer("date.add_days", 2, days)
  if days > 3660000 or days < -3660000 then
    error("date.add_days: the result is outside the years 1 to 9999", 2)
  end
  return from_day_number("date.add_days", to_days(y, m, d) + days)
end

function date.add_months(s, months)
  local y, m, d = ymd("date.add_months", 1, s)
  months = check_integer("date.add_months", 2, months)
  if months > 120000 or months < -120000 then
    error("date.add_months: the result is outside the years 1 to 9999", 2)
  end
  local index = y * 12 + (m - 1) + months
  local ny, nm = index // 12, index % 12 + 1
  if ny < 1 or ny > 9999 then
    error("date.add_months: the result is outside the years 1 to 9999", 2)
  end
  local nd = d
  if nd > month_days(ny, nm) then nd = month_days(ny, nm) end
  return iso(ny, nm, nd)
end

function date.diff_days(from, to)
  local y1, m1, d1 = ymd("date.diff_days", 1, from)
  local y2, m2, d2 = ymd("date.diff_days", 2, to)
  return to_days(y2, m2, d2) - to_days(y1, m1, d1)
end

function date.weekday(s)
  local y, m, d = ymd("date.weekday", 1, s)
  return (to_days(y, m, d) + 3) % 7 + 1
end

function date.is_valid(s)
  if type(s) ~= "string" then return false end
  local y, m, d = match(s, "^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  return y ~= nil and valid(y, m, d)
end

return {json = json, number = number, date = date, array_mt = array_mt,
        object_mt = object_mt}
