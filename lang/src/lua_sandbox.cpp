#include "cadre/lang/lua_sandbox.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <lua.hpp>

#include "lua/bounded_match.hpp"
#include "lua/stdlib.hpp"
#include "cadre/messages/json_text.hpp"
#include "cadre/messages/utf8.hpp"

// Every Lua API call that may allocate runs inside lua_pcall, because a Lua
// error outside a protected call aborts the process. Lua is built as C and
// raises errors with longjmp, so the C functions run in protected mode keep
// only trivially destructible locals (skipping their destructors is then
// harmless); everything with a destructor lives in the C++ caller.

namespace cadre::tools {

namespace {

/// The address whose light userdata stands for JSON null (`json.null`).
char null_sentinel;
/// Registry keys (their addresses).
char cache_key;
char env_key;
char env_mt_key;
char array_mt_key;
char object_mt_key;

/// Nesting limit of JSON values in both directions (also stops cycles).
constexpr int max_depth = 200;
/// Compiled chunks kept; beyond, the cache starts over.
constexpr size_t max_cached_chunks = 512;
/// How often the count hook runs at most, in VM instructions.
constexpr uint64_t max_hook_step = 10'000;

static_assert(std::is_trivially_destructible_v<json::const_iterator>,
              "push_json relies on iterators without destructors");

// Runs once in a fresh state, with the standard tables still complete: strips
// what is unsafe or non-deterministic, adds cadre's library (lua/stdlib.cpp)
// and freezes the shared library tables so one evaluation cannot change what
// the next one sees. Returns the metatables that mark JSON arrays and objects.
constexpr const char* init_chunk = R"lua(
local G, null, metafield, stdlib = ...
local error, next, type, rawget, rawset, setmetatable, ipairs =
  error, next, type, rawget, rawset, setmetatable, ipairs
local sort = table.sort

for _, name in ipairs({"dofile", "loadfile", "load", "loadstring", "require",
                       "collectgarbage", "print", "warn", "module"}) do
  G[name] = nil
end
string.dump = nil
math.random = nil
math.randomseed = nil
getmetatable("").__metatable = false

-- pairs visits keys in a fixed order (numbers, strings, booleans, then the
-- rest), since Lua's hash order changes from one process to the next.
local rank = {number = 1, string = 2, boolean = 3}
local function before(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return (rank[ta] or 4) < (rank[tb] or 4) end
  if ta == "number" or ta == "string" then return a < b end
  if ta == "boolean" then return b and not a end
  return false
end

local function sorted_pairs(t)
  local mm = metafield(t, "__pairs")
  if mm ~= nil then return mm(t) end
  if type(t) ~= "table" then
    error("bad argument #1 to 'pairs' (table expected, got "
          .. type(t) .. ")", 2)
  end
  local keys, n = {}, 0
  for k in next, t do n = n + 1; keys[n] = k end
  sort(keys, before)
  local i = 0
  return function()
    i = i + 1
    local k = keys[i]
    if k == nil then return nil end
    return k, rawget(t, k)
  end, t, nil
end

local frozen = {}
local function readonly(t, name)
  local proxy = {}
  setmetatable(proxy, {
    __index = t,
    __newindex = function() error("'" .. name .. "' is read-only", 2) end,
    __pairs = function() return sorted_pairs(t) end,
    __len = function() return #t end,
    __metatable = false,
  })
  frozen[proxy] = true
  return proxy
end

G.pairs = sorted_pairs
G.rawset = function(t, k, v)
  if frozen[t] then error("rawset: the table is read-only", 2) end
  return rawset(t, k, v)
end
-- A __gc metamethod would run during garbage collection, where the
-- instruction hook is off.
G.setmetatable = function(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("__gc metamethods are not allowed in the sandbox", 2)
  end
  if type(t) == "table" and metafield(t, "__metatable") ~= nil then
    error("cannot change a protected metatable", 2)
  end
  return setmetatable(t, mt)
end
local lib = stdlib(G, null, sorted_pairs, function(t) frozen[t] = true end)
for _, name in ipairs({"string", "table", "math", "utf8"}) do
  G[name] = readonly(G[name], name)
end
for _, name in ipairs({"json", "number", "date"}) do
  G[name] = readonly(lib[name], name)
end
G._G = nil
return lib.array_mt, lib.object_mt
)lua";

std::string escape_pointer_token(const std::string& token) {
  std::string out;
  for (char c : token) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

std::string shorten(std::string_view text, size_t max = 80) {
  if (text.size() <= max)
    return std::string{text};
  return std::string{text.substr(0, max)} + "...";
}

std::string_view trim(std::string_view s) {
  auto ws = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
  };
  while (!s.empty() && ws(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && ws(s.back()))
    s.remove_suffix(1);
  return s;
}

/// Pushes `j` as a Lua value. Runs in protected mode (see the top).
void push_json(lua_State* L, const json& j, int depth) {
  if (depth > max_depth)
    luaL_error(L, "JSON nested deeper than %d levels", max_depth);
  luaL_checkstack(L, 3, "JSON nested too deeply");
  switch (j.type()) {
    case json::value_t::null:
    case json::value_t::discarded:
      lua_pushlightuserdata(L, &null_sentinel);
      break;
    case json::value_t::boolean:
      lua_pushboolean(L, j.get<bool>() ? 1 : 0);
      break;
    case json::value_t::number_integer:
      lua_pushinteger(L, static_cast<lua_Integer>(j.get<int64_t>()));
      break;
    case json::value_t::number_unsigned: {
      auto u = j.get<uint64_t>();
      if (u <= static_cast<uint64_t>(std::numeric_limits<lua_Integer>::max()))
        lua_pushinteger(L, static_cast<lua_Integer>(u));
      else
        lua_pushnumber(L, static_cast<lua_Number>(u));
      break;
    }
    case json::value_t::number_float:
      lua_pushnumber(L, j.get<double>());
      break;
    case json::value_t::string: {
      const auto& s = j.get_ref<const std::string&>();
      lua_pushlstring(L, s.data(), s.size());
      break;
    }
    case json::value_t::binary:
      luaL_error(L, "binary JSON values have no Lua form");
      break;
    case json::value_t::array: {
      lua_createtable(L, static_cast<int>(std::min<size_t>(j.size(), 1u << 20)),
                      0);
      // Marked, so that an empty (or emptied) array stays an array.
      lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key);
      lua_setmetatable(L, -2);
      lua_Integer i = 1;
      for (auto it = j.cbegin(); it != j.cend(); ++it) {
        push_json(L, *it, depth + 1);
        lua_rawseti(L, -2, i++);
      }
      break;
    }
    case json::value_t::object: {
      lua_createtable(L, 0,
                      static_cast<int>(std::min<size_t>(j.size(), 1u << 20)));
      lua_rawgetp(L, LUA_REGISTRYINDEX, &object_mt_key);
      lua_setmetatable(L, -2);
      for (auto it = j.cbegin(); it != j.cend(); ++it) {
        const std::string& key = it.key();
        lua_pushlstring(L, key.data(), key.size());
        push_json(L, *it, depth + 1);
        lua_rawset(L, -3);
      }
      break;
    }
  }
}

/// Returns the raw metatable field arg 2 of arg 1 (ignores __metatable).
int raw_metafield(lua_State* L) {
  if (!lua_getmetatable(L, 1))
    return 0;
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

int append_chunk(lua_State*, const void* p, size_t n, void* out) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(p), n);
  return 0;
}

/// The standard library compiled once per process (empty if that failed):
/// loading its bytecode into each new state is much faster than parsing it.
/// Stripped of debug info (half the load time again); its errors name the
/// caller's line, not its own.
const std::string& stdlib_bytecode() {
  static const std::string code = [] {
    std::string out;
    lua_State* L = luaL_newstate();
    if (L == nullptr)
      return out;
    auto src = detail::lua_stdlib_source();
    if (luaL_loadbufferx(L, src.data(), src.size(), "=stdlib", "t") == LUA_OK
        && lua_dump(L, append_chunk, &out, 1) != 0)
      out.clear();
    lua_close(L);
    return out;
  }();
  return code;
}

/// Protected: arg 1 points to the library's bytecode (or an empty string);
/// opens the safe libraries and runs init_chunk.
int init_state(lua_State* L) {
  auto bytecode = static_cast<const std::string*>(lua_touserdata(L, 1));
  luaL_requiref(L, "_G", luaopen_base, 1);
  luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
  // Before the library and init_chunk take their own references.
  detail::replace_pattern_functions(L, -1);
  luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
  luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
  luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
  lua_settop(L, 0);
  auto init_size = std::char_traits<char>::length(init_chunk);
  if (luaL_loadbufferx(L, init_chunk, init_size, "=sandbox_init", "t")
      != LUA_OK)
    return lua_error(L);
  lua_pushglobaltable(L);
  lua_pushlightuserdata(L, &null_sentinel);
  lua_pushcfunction(L, raw_metafield);
  // Our own bytecode only; scripts and expressions load as text ("t").
  int loaded = LUA_OK;
  if (!bytecode->empty()) {
    loaded = luaL_loadbufferx(L, bytecode->data(), bytecode->size(),
                              "=stdlib", "b");
  } else {
    auto source = detail::lua_stdlib_source();
    loaded = luaL_loadbufferx(L, source.data(), source.size(), "=stdlib",
                              "t");
  }
  if (loaded != LUA_OK)
    return lua_error(L);
  lua_call(L, 4, 2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &object_mt_key);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &array_mt_key);
  // The metatable of each evaluation's globals: reads fall through to the
  // (frozen) standard globals, writes stay in the evaluation's own table.
  lua_createtable(L, 0, 2);
  lua_pushglobaltable(L);
  lua_setfield(L, -2, "__index");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &env_mt_key);
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &cache_key);
  return 0;
}

/// Protected: the state of a compile-only sandbox needs only the cache of
/// compiled chunks (compile).
int init_compiler(lua_State* L) {
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &cache_key);
  return 0;
}

/// Protected: arg 1 points to a json object; builds the evaluation's globals
/// table from it and keeps it in the registry.
int bind_env(lua_State* L) {
  auto env = static_cast<const json*>(lua_touserdata(L, 1));
  lua_createtable(L, 0, static_cast<int>(env->size()) + 1);
  for (auto it = env->cbegin(); it != env->cend(); ++it) {
    const std::string& key = it.key();
    lua_pushlstring(L, key.data(), key.size());
    push_json(L, *it, 1);
    lua_rawset(L, -3);
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "_G");
  lua_rawgetp(L, LUA_REGISTRYINDEX, &env_mt_key);
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &env_key);
  return 0;
}

struct compile_request {
  const std::string* key;
  const std::string* source;
  const char* chunk_name;
  bool start_over; ///< drop the cache before adding
  bool added;      ///< out: the chunk was compiled and cached
};

/// Protected: arg 1 points to a compile_request; returns the compiled
/// function, from the cache when it was compiled before.
int compile(lua_State* L) {
  auto req = static_cast<compile_request*>(lua_touserdata(L, 1));
  lua_rawgetp(L, LUA_REGISTRYINDEX, &cache_key);
  lua_pushlstring(L, req->key->data(), req->key->size());
  if (lua_rawget(L, -2) == LUA_TFUNCTION)
    return 1;
  lua_pop(L, 1);
  if (luaL_loadbufferx(L, req->source->data(), req->source->size(),
                       req->chunk_name, "t")
      != LUA_OK)
    return lua_error(L);
  if (req->start_over) {
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &cache_key);
    lua_replace(L, -3);
  }
  lua_pushlstring(L, req->key->data(), req->key->size());
  lua_pushvalue(L, -2);
  lua_rawset(L, -4);
  req->added = true;
  return 1;
}

/// The bounds of the evaluation that runs in a sandbox's state, with what
/// enforces them; the state's extra space points here, for the count hook
/// and the pattern matcher.
struct evaluation_bounds {
  using clock = std::chrono::steady_clock;

  /// Why the running evaluation was stopped, if it was.
  enum class stop { none, instructions, time, cancelled };

  lua_State* L = nullptr;
  uint64_t instruction_limit = 0;
  uint64_t executed = 0;
  uint64_t hook_step = 0;
  /// None between evaluations.
  clock::time_point deadline = clock::time_point::max();
  int64_t time_bound_ms = 0;
  const std::atomic<bool>* cancel = nullptr;
  stop stopped = stop::none;

  static evaluation_bounds* self_of(lua_State* L) {
    return *static_cast<evaluation_bounds**>(lua_getextraspace(L));
  }

  /// Raises the error for `why`. From then on the hook fails at every
  /// instruction, so a pcall in the script cannot swallow the error and
  /// carry on.
  void halt(stop why) {
    stopped = why;
    hook_step = 1;
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    // Without luaL_error's "chunk:line:" prefix: the message is the same
    // wherever the bound was hit (a hook or the pattern matcher). No C++
    // temporaries: lua_error jumps past destructors.
    switch (why) {
      case stop::instructions:
        lua_pushfstring(L, "instruction limit exceeded (%I instructions)",
                        static_cast<lua_Integer>(instruction_limit));
        break;
      case stop::time:
        lua_pushfstring(L, "time limit exceeded (%I ms)",
                        static_cast<lua_Integer>(time_bound_ms));
        break;
      case stop::cancelled:
      case stop::none:
        lua_pushliteral(L, "cancelled");
        break;
    }
    lua_error(L);
  }

  /// Raises an error when the evaluation is past its deadline or cancelled.
  void check_time() {
    if (cancel != nullptr && cancel->load(std::memory_order_relaxed))
      halt(stop::cancelled);
    if (deadline != clock::time_point::max() && clock::now() >= deadline)
      halt(stop::time);
  }

  static void count_hook(lua_State* L, lua_Debug*) {
    auto self = self_of(L);
    self->executed += self->hook_step;
    self->check_time();
    auto limit = self->instruction_limit;
    if (self->executed >= limit) {
      self->halt(stop::instructions);
      return;
    }
    auto step = std::min(max_hook_step, limit - self->executed);
    if (step != self->hook_step) {
      self->hook_step = step;
      lua_sethook(L, count_hook, LUA_MASKCOUNT, static_cast<int>(step));
    }
  }

  /// The message of the bound that stopped the evaluation.
  std::string limit_text() const {
    switch (stopped) {
      case stop::instructions:
        return "instruction limit exceeded ("
               + std::to_string(instruction_limit) + " instructions)";
      case stop::time:
        return "time limit exceeded (" + std::to_string(time_bound_ms)
               + " ms)";
      case stop::cancelled:
        return "cancelled";
      case stop::none:
        break;
    }
    return {};
  }
};

} // namespace

struct lua_sandbox::impl : evaluation_bounds {
  sandbox_options opts;
  size_t used = 0;
  bool memory_denied = false;
  size_t cached = 0;
  bool bound = false;

  ~impl() {
    if (L != nullptr)
      lua_close(L);
  }

  static void* allocate(void* ud, void* ptr, size_t osize, size_t nsize) {
    auto self = static_cast<impl*>(ud);
    // For a new block, osize encodes the object type, not a size.
    size_t old = ptr != nullptr ? osize : 0;
    if (nsize == 0) {
      std::free(ptr);
      self->used -= old;
      return nullptr;
    }
    if (nsize > old && self->used - old + nsize > self->opts.memory_limit) {
      self->memory_denied = true;
      return nullptr;
    }
    void* out = std::realloc(ptr, nsize);
    if (out == nullptr) {
      self->memory_denied = true;
      return nullptr;
    }
    self->used = self->used - old + nsize;
    return out;
  }

  /// The code of a failed call: a bound that was hit, or a Lua error.
  errc failure_code(int status) const {
    if (stopped == stop::cancelled)
      return errc::cancelled;
    if (stopped != stop::none || memory_denied || status == LUA_ERRMEM)
      return errc::limit_exceeded;
    return errc::script_error;
  }

  /// Message of the error value on top of the stack after a failed pcall.
  std::string error_text(int status) {
    if (status == LUA_ERRMEM || memory_denied)
      return "memory limit exceeded (" + std::to_string(opts.memory_limit)
             + " bytes)";
    switch (lua_type(L, -1)) {
      case LUA_TSTRING: {
        size_t n = 0;
        auto s = lua_tolstring(L, -1, &n);
        return std::string{s, n};
      }
      case LUA_TNUMBER:
        if (lua_isinteger(L, -1))
          return std::to_string(lua_tointeger(L, -1));
        return std::to_string(lua_tonumber(L, -1));
      default:
        return std::string{"(error object is a "}
               + luaL_typename(L, -1) + " value)";
    }
  }

  /// Runs the C function `fn` with one light userdata argument in protected
  /// mode, leaving `nresults` results on the stack.
  int protect(lua_CFunction fn, void* arg, int nresults) {
    memory_denied = false;
    lua_pushcfunction(L, fn);
    lua_pushlightuserdata(L, arg);
    return lua_pcall(L, 1, nresults, 0);
  }

  /// Binds the globals and starts the clock of one evaluation.
  expected<void> bind(const json& env, const call_bounds& bounds) {
    stopped = stop::none;
    if (opts.compile_only)
      return make_error(errc::invalid_config,
                        "lua: this sandbox only compiles (compile_only)");
    if (!env.is_object() && !env.is_null())
      return make_error(errc::script_error,
                        "lua: the globals must be a JSON object, got "
                          + std::string{env.type_name()});
    static const json empty = json::object();
    const json* globals = env.is_object() ? &env : &empty;
    lua_settop(L, 0);
    int status = protect(bind_env, const_cast<json*>(globals), 0);
    if (status != LUA_OK) {
      auto msg = error_text(status);
      lua_settop(L, 0);
      return make_error(failure_code(status), "lua: globals: " + msg);
    }
    bound = true;
    auto now = clock::now();
    deadline = now + opts.time_limit;
    if (bounds.deadline < deadline)
      deadline = bounds.deadline;
    time_bound_ms = std::max<int64_t>(
      0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now)
           .count());
    cancel = bounds.cancelled;
    return {};
  }

  void unbind() {
    deadline = clock::time_point::max();
    cancel = nullptr;
    if (!bound)
      return;
    // Overwriting an existing registry slot with nil does not allocate.
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &env_key);
    lua_settop(L, 0);
    bound = false;
  }

  /// Compiles (or finds) `source` and leaves the function on the stack.
  expected<void> load(const std::string& key, const std::string& source,
                      const char* chunk_name, const std::string& what) {
    compile_request req{&key, &source, chunk_name,
                        cached >= max_cached_chunks, false};
    int status = protect(compile, &req, 1);
    if (status != LUA_OK) {
      auto msg = error_text(status);
      lua_pop(L, 1);
      return make_error(failure_code(status), what + ": " + msg);
    }
    if (req.added)
      cached = req.start_over ? 1 : cached + 1;
    return {};
  }

  /// Calls the function on top of the stack with the bound globals; returns
  /// its first result as JSON. Pops the function.
  expected<json> call(const std::string& what) {
    int fn = lua_gettop(L);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &env_key);
    lua_setupvalue(L, fn, 1);
    lua_pushvalue(L, fn);
    executed = 0;
    hook_step = std::max<uint64_t>(
      1, std::min(max_hook_step, opts.instruction_limit));
    lua_sethook(L, count_hook, LUA_MASKCOUNT, static_cast<int>(hook_step));
    memory_denied = false;
    int status = lua_pcall(L, 0, 1, 0);
    lua_sethook(L, nullptr, 0, 0);
    expected<json> result = json{};
    if (status != LUA_OK || stopped != stop::none) {
      // A limit that a pcall in the script caught still ends the call.
      auto msg = status != LUA_OK ? error_text(status) : limit_text();
      result = make_error(failure_code(status), what + ": " + msg);
    } else {
      json out;
      std::string path;
      if (auto err = from_lua(lua_gettop(L), out, 0, path); !err.empty())
        result = make_error(errc::script_error,
                            what + ": the result "
                              + (path.empty() ? "" : "at " + path + " ")
                              + "has no JSON form: " + err);
      else
        result = std::move(out);
    }
    // Let go of the globals so they can be collected before the next call.
    lua_pushnil(L);
    lua_setupvalue(L, fn, 1);
    lua_settop(L, fn - 1);
    return result;
  }

  /// Converts the value at absolute index `idx`; returns a problem or "".
  /// Uses only API calls that neither allocate nor raise errors.
  std::string from_lua(int idx, json& out, int depth, std::string& path) {
    switch (lua_type(L, idx)) {
      case LUA_TNIL:
        out = nullptr;
        return {};
      case LUA_TBOOLEAN:
        out = lua_toboolean(L, idx) != 0;
        return {};
      case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
          out = static_cast<int64_t>(lua_tointeger(L, idx));
        } else {
          double d = lua_tonumber(L, idx);
          if (!std::isfinite(d))
            return "a number that is not finite";
          out = d;
        }
        return {};
      case LUA_TSTRING: {
        size_t n = 0;
        auto s = lua_tolstring(L, idx, &n);
        if (!valid_utf8(std::string_view{s, n}))
          return "a string that is not valid UTF-8";
        out = std::string{s, n};
        return {};
      }
      case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == &null_sentinel) {
          out = nullptr;
          return {};
        }
        return "a light userdata";
      case LUA_TTABLE:
        return table_from_lua(idx, out, depth, path);
      default:
        return std::string{"a "} + luaL_typename(L, idx);
    }
  }

  std::string table_from_lua(int idx, json& out, int depth,
                             std::string& path) {
    if (depth >= max_depth)
      return "tables nested deeper than " + std::to_string(max_depth)
             + " levels (a cycle?)";
    if (!lua_checkstack(L, 6))
      return "tables nested too deeply";
    // The marker metatables of json.array / json.object (and of decoded
    // and input tables) decide what an empty table is.
    enum { unmarked, array_marked, object_marked } marker = unmarked;
    if (lua_getmetatable(L, idx)) {
      lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key);
      if (lua_rawequal(L, -1, -2)) {
        marker = array_marked;
      } else {
        lua_pop(L, 1);
        lua_rawgetp(L, LUA_REGISTRYINDEX, &object_mt_key);
        if (lua_rawequal(L, -1, -2))
          marker = object_marked;
      }
      lua_pop(L, 2);
    }
    size_t count = 0;
    size_t positive = 0;
    lua_Integer max_key = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
      ++count;
      if (lua_type(L, -2) == LUA_TNUMBER && lua_isinteger(L, -2)) {
        auto k = lua_tointeger(L, -2);
        if (k >= 1) {
          ++positive;
          max_key = std::max(max_key, k);
        }
      }
      lua_pop(L, 1);
    }
    if (count == 0) {
      out = marker == array_marked ? json::array() : json::object();
      return {};
    }
    auto base = path.size();
    if (marker != object_marked && positive == count
        && static_cast<size_t>(max_key) == count) {
      out = json::array();
      for (size_t i = 1; i <= count; ++i) {
        lua_rawgeti(L, idx, static_cast<lua_Integer>(i));
        path += "/" + std::to_string(i - 1);
        json item;
        auto err = from_lua(lua_gettop(L), item, depth + 1, path);
        lua_pop(L, 1);
        if (!err.empty())
          return err;
        path.resize(base);
        out.push_back(std::move(item));
      }
      return {};
    }
    out = json::object();
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
      std::string key;
      // lua_tolstring on a number key would change it in place and break
      // lua_next, so integer keys are formatted here.
      if (lua_type(L, -2) == LUA_TSTRING) {
        size_t n = 0;
        auto s = lua_tolstring(L, -2, &n);
        if (!valid_utf8(std::string_view{s, n}))
          return "a table key that is not valid UTF-8";
        key.assign(s, n);
      } else if (lua_type(L, -2) == LUA_TNUMBER && lua_isinteger(L, -2)) {
        key = std::to_string(lua_tointeger(L, -2));
      } else {
        return std::string{"a table key of type "} + luaL_typename(L, -2);
      }
      path += "/" + escape_pointer_token(key);
      json item;
      auto err = from_lua(lua_gettop(L), item, depth + 1, path);
      if (!err.empty())
        return err;
      path.resize(base);
      out[key] = std::move(item);
      lua_pop(L, 1);
    }
    return {};
  }

  /// Source text and cache key of an expression.
  static std::pair<std::string, std::string>
  expression_source(std::string_view expr) {
    std::string key = "e";
    key += expr;
    std::string source = "return (";
    source += expr;
    // A trailing "--" comment would swallow the parenthesis.
    source += expr.find("--") == std::string_view::npos ? ")" : "\n)";
    return {std::move(key), std::move(source)};
  }

  expected<json> eval_bound(std::string_view expr) {
    auto what = "expression '" + shorten(expr) + "'";
    auto [key, source] = expression_source(expr);
    if (auto ok = load(key, source, "=expr", what); !ok)
      return std::move(ok.error());
    return call(what);
  }

  expected<json> render(const json& tmpl, std::string& pointer);
};

lua_sandbox::lua_sandbox(std::unique_ptr<impl> ptr) : impl_(std::move(ptr)) {
}

lua_sandbox::~lua_sandbox() = default;

expected<std::unique_ptr<lua_sandbox>>
lua_sandbox::create(sandbox_options opts) {
  if (opts.instruction_limit == 0)
    return make_error(errc::invalid_config,
                      "lua sandbox: instruction_limit must be at least 1");
  auto p = std::make_unique<impl>();
  p->opts = opts;
  p->L = lua_newstate(&impl::allocate, p.get());
  if (p->L == nullptr)
    return make_error(errc::invalid_config,
                      "lua sandbox: cannot create a Lua state within "
                        + std::to_string(opts.memory_limit) + " bytes");
  p->instruction_limit = opts.instruction_limit;
  *static_cast<evaluation_bounds**>(lua_getextraspace(p->L)) = p.get();
  int status = LUA_OK;
  if (opts.compile_only) {
    status = p->protect(init_compiler, nullptr, 0);
  } else {
    const std::string& bytecode = stdlib_bytecode();
    status = p->protect(init_state, const_cast<std::string*>(&bytecode), 0);
  }
  if (status != LUA_OK) {
    auto msg = p->error_text(status);
    return make_error(errc::invalid_config, "lua sandbox: set-up: " + msg);
  }
  lua_settop(p->L, 0);
  return std::unique_ptr<lua_sandbox>{new lua_sandbox(std::move(p))};
}

expected<void> lua_sandbox::check_expression(std::string_view expr) {
  auto& s = *impl_;
  lua_settop(s.L, 0);
  auto [key, source] = impl::expression_source(expr);
  auto ok = s.load(key, source, "=expr", "expression '" + shorten(expr) + "'");
  lua_settop(s.L, 0);
  return ok;
}

expected<void> lua_sandbox::check_chunk(std::string_view code) {
  auto& s = *impl_;
  lua_settop(s.L, 0);
  std::string key = "c";
  key += code;
  auto ok = s.load(key, std::string{code}, "=script", "script");
  lua_settop(s.L, 0);
  return ok;
}

expected<json> lua_sandbox::eval(std::string_view expr, const json& env,
                                 const call_bounds& bounds) {
  auto& s = *impl_;
  if (auto ok = s.bind(env, bounds); !ok)
    return std::move(ok.error());
  auto result = s.eval_bound(expr);
  s.unbind();
  return result;
}

expected<json> lua_sandbox::run(std::string_view code, const json& env,
                                const call_bounds& bounds) {
  auto& s = *impl_;
  if (auto ok = s.bind(env, bounds); !ok)
    return std::move(ok.error());
  std::string key = "c";
  key += code;
  expected<json> result = json{};
  if (auto ok = s.load(key, std::string{code}, "=script", "script"); !ok)
    result = std::move(ok.error());
  else
    result = s.call("script");
  s.unbind();
  return result;
}

namespace {

/// One "{{ expr }}" in a template string.
struct placeholder {
  size_t begin; ///< offset of "{{"
  size_t end;   ///< offset just past "}}"
  std::string_view expr;
};

/// Splits `s` into placeholders; false when a "{{" is never closed.
bool find_placeholders(std::string_view s, std::vector<placeholder>& out) {
  size_t pos = 0;
  while ((pos = s.find("{{", pos)) != std::string_view::npos) {
    auto close = s.find("}}", pos + 2);
    if (close == std::string_view::npos)
      return false;
    out.push_back({pos, close + 2, trim(s.substr(pos + 2, close - pos - 2))});
    pos = close + 2;
  }
  return true;
}

std::string template_where(const std::string& pointer) {
  return pointer.empty() ? "template" : "template " + pointer;
}

} // namespace

expected<json> lua_sandbox::impl::render(const json& tmpl,
                                         std::string& pointer) {
  if (tmpl.is_object()) {
    json out = json::object();
    auto base = pointer.size();
    for (auto it = tmpl.begin(); it != tmpl.end(); ++it) {
      pointer += "/" + escape_pointer_token(it.key());
      auto v = render(*it, pointer);
      if (!v)
        return v;
      pointer.resize(base);
      out[it.key()] = std::move(*v);
    }
    return out;
  }
  if (tmpl.is_array()) {
    json out = json::array();
    auto base = pointer.size();
    for (size_t i = 0; i < tmpl.size(); ++i) {
      pointer += "/" + std::to_string(i);
      auto v = render(tmpl[i], pointer);
      if (!v)
        return v;
      pointer.resize(base);
      out.push_back(std::move(*v));
    }
    return out;
  }
  if (!tmpl.is_string())
    return tmpl;
  const auto& text = tmpl.get_ref<const std::string&>();
  std::vector<placeholder> parts;
  if (!find_placeholders(text, parts))
    return make_error(errc::script_error,
                      template_where(pointer)
                        + ": a '{{' is not closed by '}}'");
  if (parts.empty())
    return tmpl;
  auto failed = [&](const caf::error& err) {
    return make_error(code_of(err),
                      template_where(pointer) + ": " + message_of(err));
  };
  auto evaluate = [&](std::string_view expr) -> expected<json> {
    if (expr.empty())
      return make_error(errc::script_error, "empty expression in '{{ }}'");
    return eval_bound(expr);
  };
  if (parts.size() == 1 && parts[0].begin == 0
      && parts[0].end == text.size()) {
    auto v = evaluate(parts[0].expr);
    if (!v)
      return failed(v.error());
    return v;
  }
  std::string out;
  size_t last = 0;
  for (const auto& p : parts) {
    out.append(text, last, p.begin - last);
    auto v = evaluate(p.expr);
    if (!v)
      return failed(v.error());
    if (v->is_string())
      out += v->get_ref<const std::string&>();
    else
      out += dump_json(*v);
    last = p.end;
  }
  out.append(text, last, std::string::npos);
  return json(std::move(out));
}

expected<json> lua_sandbox::render(const json& tmpl, const json& env) {
  auto& s = *impl_;
  if (auto ok = s.bind(env, {}); !ok)
    return std::move(ok.error());
  std::string pointer;
  auto result = s.render(tmpl, pointer);
  s.unbind();
  return result;
}

expected<json> render_template(lua_sandbox& sandbox, const json& tmpl,
                               const json& env) {
  return sandbox.render(tmpl, env);
}

namespace {

void visit_template(
  const json& tmpl, std::string& pointer,
  const std::function<void(const std::string&, const std::string&)>& fn) {
  auto base = pointer.size();
  if (tmpl.is_object()) {
    for (auto it = tmpl.begin(); it != tmpl.end(); ++it) {
      pointer += "/" + escape_pointer_token(it.key());
      visit_template(*it, pointer, fn);
      pointer.resize(base);
    }
  } else if (tmpl.is_array()) {
    for (size_t i = 0; i < tmpl.size(); ++i) {
      pointer += "/" + std::to_string(i);
      visit_template(tmpl[i], pointer, fn);
      pointer.resize(base);
    }
  } else if (tmpl.is_string()) {
    std::vector<placeholder> parts;
    find_placeholders(tmpl.get_ref<const std::string&>(), parts);
    for (const auto& p : parts)
      fn(pointer, std::string{p.expr});
  }
}

} // namespace

namespace detail {

void check_match_budget(lua_State* L) {
  evaluation_bounds::self_of(L)->check_time();
}

} // namespace detail

void for_each_template_expression(
  const json& tmpl,
  const std::function<void(const std::string& pointer,
                           const std::string& expr)>& fn) {
  std::string pointer;
  visit_template(tmpl, pointer, fn);
}

} // namespace cadre::tools
