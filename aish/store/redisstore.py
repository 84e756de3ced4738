"""The Redis store: the file store's semantics for teams and several machines sharing sessions.

Layout (docs/storage.md; plain lists and hashes: Debian's redis-server has no JSON module).
Every key of a session carries the hash tag ``{id}``, so a cluster keeps them in one slot and
one script may touch them all:

- ``aish:{id}:log`` — a list of JSON records, exactly the lines of the file store's log,
  written by the session's owner;
- ``aish:{id}:log:<user>`` — the records of each other writer, which only that ACL user may
  write, stamped with their place in the session (`aish.store.writerlogs`);
- ``aish:{id}:meta`` — a hash with the summary: ``m:<key>`` (meta values as JSON),
  ``n:messages``, ``n:user_messages``, ``n:tokens``, ``ai:<name>`` (replies per specialist),
  ``last_time``, ``bytes`` (the log's size as the file store counts it) and ``gen`` (bumped by
  every rewrite, so a reader walking the list can tell that it changed under it), ``mb:<user>``
  (one person's latest grant), ``wn:<user>`` and ``qn`` (records in each writer's log, in all);
- ``aish:{id}:backup:<stamp>-<reason>`` — a copy of the log taken before a rewrite;
- ``aish:{id}:tomb`` — what was deleted from the session (JSON, see
  `aish.store.base.merge_tombstones`), kept for `TOMBSTONE_SECONDS` so sync does not undo it;
- ``aish:doc:<kind>:<name>`` — templates and checkpoints (JSON strings).

Every write (create, append, rewrite) is one Lua script: the records are pushed, the summary
hash is updated and the session's keys get their deadline again, atomically, so concurrent
writers on any number of machines lose nothing and the summary never disagrees with the log.
All the session's keys (meta, events, every log) share one deadline or none, so no part of a
session outlives the rest (see the script's TTL step).

Expiry: the TTL is the session timeout plus a retention period (`RETENTION_DAYS`), re-issued on
every write. A session idle for longer than the timeout is *expired* exactly as in the file store
(listed with ``--all``, continued by naming it, removed by ``--cleanup-sessions``); Redis drops
it by itself only once it has also been idle for the retention period. A plain timeout TTL
would make expired sessions vanish, which the file store never does. Backups keep the retention
TTL; templates and checkpoints never expire.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Sequence
from typing import Any, cast

from aish.errors import (
    AishError,
    ConfigError,
    LimitError,
    PermissionDenied,
    SessionExists,
    SessionNotFound,
    StorageError,
)
from aish.ids import ID_PATTERN, check_id
from aish.messages import Message
from aish.store import rediscluster
from aish.store.base import (
    FORMAT_VERSION,
    MAX_LINE_CHARS,
    TOMBSTONE_SECONDS,
    Loaded,
    PlainCodec,
    Problem,
    Summary,
    dump_line,
    find_message,
    fold_records,
    follow_alias,
    merge_tombstones,
    open_doc,
    parse_aliases,
    parse_line,
    parse_tombstone,
    rewrite_records,
    seal_doc,
    walk,
)
from aish.store.filestore import DOC_KINDS, _last_pairs
from aish.store.refs import (
    ANY,
    MAIN,
    Head,
    RefMoved,
    RefState,
    decode_head,
    message_id,
    move_of,
)
from aish.store.writerlogs import MergedMedium, merge, unstamped, writers

DEFAULT_URL = "redis://127.0.0.1:6379/0"
PREFIX = "aish"
CRYPTO_KEY = "aish:crypto"  # salt and key check of an encrypted store (aish.store.crypto)
RETENTION_DAYS = 30.0
_FIRST_CHUNK = 64  # tail reads this many records from the end, doubling up to _MAX_CHUNK
_MAX_CHUNK = 4096
_SCAN_COUNT = 1000

# One script for every write. KEYS: meta hash, the log written (the owner's, or the writer's
# own), events stream, then (the owner's writes only) the other writers' logs: dropped by a
# rewrite, their TTL renewed by an append.
# ARGV: mode (create|append|replace), ttl ms, size limit, bytes added,
#       n records, records..., n hash fields, (field, value)..., n counters, (field, incr)...,
#       last_time, last message (id and its index in the batch, or ""),
#       n ref moves, (name, from, to, index in the batch or -1, index in the log or "", op)...
# A ref move's from is "!" (the ref must not exist), "*" (any) or "=" followed by the id the
# ref must point at; every move is checked, in order, before anything is written, and the
# script fails with AISH_REF when one does not hold. Heads are stored as "ID INDEX".
# After the events arguments: the writer whose own log KEYS[2] is ("": the owner's log), then
# (a writer's only) how many other logs of the session follow, and their keys. A
# writer's records are stamped with their place in the session's order (``"q":N`` first);
# an index is a place in that order, across every log.
_WRITE = """
local meta, log = KEYS[1], KEYS[2]
local mode = ARGV[1]
local ttl = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local add = tonumber(ARGV[4])
local exists = redis.call('EXISTS', meta) == 1
if mode == 'create' and exists then return redis.error_reply('AISH_EXISTS') end
if mode == 'append' then
  if not exists then return redis.error_reply('AISH_MISSING') end
  local size = tonumber(redis.call('HGET', meta, 'bytes') or '0') or 0
  if size + add > limit then return redis.error_reply('AISH_TOO_BIG ' .. size) end
end
local n_rec = tonumber(ARGV[5])
local j = 6 + n_rec
j = j + 1 + 2 * tonumber(ARGV[j])
j = j + 1 + 2 * tonumber(ARGV[j])
local w = j + 3
w = w + 1 + 6 * tonumber(ARGV[w])
local w_at = w + 2 + (tonumber(ARGV[w + 1]) or 0)
local writer = ARGV[w_at] or ''
local base = 0
if mode == 'append' then
  -- "rl": how many records the branch heads here cover, across every log. An older aish
  -- appends without updating them; then they are rebuilt from the logs (the client, on
  -- AISH_STALE) first. A session stored before branches existed has no "rl" at all: the
  -- same, once. A writer may not read the count of the owner's log here (it is not among
  -- its keys), so it checks that its own log holds what the hash says it does.
  local rl = tonumber(redis.call('HGET', meta, 'rl') or '-1')
  if writer == '' then
    base = redis.call('LLEN', log) + (tonumber(redis.call('HGET', meta, 'qn') or '0') or 0)
    if rl ~= base then return redis.error_reply('AISH_STALE') end
  else
    local own = tonumber(redis.call('HGET', meta, 'wn:' .. writer) or '0') or 0
    if rl == nil or rl < 0 or redis.call('LLEN', log) ~= own then
      return redis.error_reply('AISH_STALE')
    end
    base = rl
  end
end
local last_t = ARGV[j]
local lm_id, lm_k = ARGV[j + 1], ARGV[j + 2]
j = j + 3
local n_moves = tonumber(ARGV[j]); j = j + 1
local heads, stacks = {}, {}
local function head(name)
  if heads[name] ~= nil then return heads[name] end
  local v = redis.call('HGET', meta, 'r:' .. name)
  if not v and name == 'main' then
    v = redis.call('HGET', meta, 'lm') or ' '
    heads[name] = v
    return v, true
  end
  heads[name] = v or false
  return heads[name]
end
local explicit = {}
local moves = {}
for m = 1, n_moves do
  local name, from, to = ARGV[j], ARGV[j + 1], ARGV[j + 2]
  local k, at, op = tonumber(ARGV[j + 3]), ARGV[j + 4], ARGV[j + 5]
  j = j + 6
  local cur, implicit = head(name)
  if explicit[name] then implicit = false end
  local cur_id = cur and string.match(cur, '^([^ ]*)') or nil
  local ok, soft = false, string.sub(from, 1, 1) == '~'
  if from == '*' then ok = true
  elseif from == '!' then ok = (not cur) or (name == 'main' and implicit)
  elseif from == '~' then
    local lm = redis.call('HGET', meta, 'lm') or ' '
    ok = cur and cur_id == string.match(lm, '^([^ ]*)')
  elseif soft then ok = cur and cur_id == string.sub(from, 3)
  else ok = cur and cur_id == string.sub(from, 2) end
  if not ok and not soft then
    return redis.error_reply('AISH_REF ' .. name .. ' ' .. (cur or '-'))
  end
  if ok then
    local pos = at
    if k >= 0 then pos = tostring(base + k) end
    local stack = stacks[name]
    if stack == nil then stack = redis.call('HGET', meta, 'rd:' .. name) or '' end
    if op == 'undo' and cur then
      if stack == '' then stack = cur else stack = cur .. ';' .. stack end
    elseif op == 'redo' and stack ~= '' then
      local first, rest = string.match(stack, '^([^;]*);?(.*)$')
      if string.match(first, '^([^ ]*)') == to then
        if pos == '' then pos = string.match(first, ' (.*)$') or '' end
        stack = rest
      else
        stack = ''
      end
    elseif op ~= 'keep' then
      stack = ''
    end
    stacks[name] = stack
    heads[name] = to .. ' ' .. pos
    explicit[name] = true
    moves[#moves + 1] = name
  end
end
if mode == 'replace' then
  local gen = redis.call('HINCRBY', meta, 'gen', 1)
  redis.call('DEL', meta, log)
  for k = 4, #KEYS do redis.call('DEL', KEYS[k]) end
  redis.call('HSET', meta, 'gen', gen)
elseif mode == 'create' then
  redis.call('DEL', log)
end
local i = 5
local n = tonumber(ARGV[i]); i = i + 1
local batch = {}
for k = 0, n - 1 do
  local rec = ARGV[i]; i = i + 1
  if writer ~= '' then
    local stamp = '{"q":' .. tostring(base + k) .. ','
    add = add + #stamp - 1
    rec = stamp .. string.sub(rec, 2)
  end
  batch[#batch + 1] = rec
  if #batch == 1000 then redis.call('RPUSH', log, unpack(batch)); batch = {} end
end
if #batch > 0 then redis.call('RPUSH', log, unpack(batch)) end
if writer ~= '' then
  redis.call('HINCRBY', meta, 'qn', n)
  redis.call('HINCRBY', meta, 'wn:' .. writer, n)
end
redis.call('HINCRBY', meta, 'bytes', add)
n = tonumber(ARGV[i]); i = i + 1
-- An automatic title does not replace a person's (the fold rule of aish.header.fold_meta),
-- checked here against the title stored now, so a person's that won a race is kept.
local keep_title = false
if mode == 'append' then
  for f = 0, n - 1 do
    if ARGV[i + 2 * f] == 'm:title_by' and ARGV[i + 2 * f + 1] == '"auto"' then
      local by = redis.call('HGET', meta, 'm:title_by')
      local title = redis.call('HGET', meta, 'm:title')
      keep_title = by == '"user"' and title ~= false and title ~= 'null'
        and string.match(title, '^"%s*"$') == nil
    end
  end
end
for _ = 1, n do
  local f = ARGV[i]
  if not (keep_title and (f == 'm:title' or f == 'm:title_by')) then
    redis.call('HSET', meta, f, ARGV[i + 1])
  end
  i = i + 2
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do redis.call('HINCRBY', meta, ARGV[i], ARGV[i + 1]); i = i + 2 end
local t = tonumber(last_t) or 0
local old = tonumber(redis.call('HGET', meta, 'last_time') or '0') or 0
if t > old then redis.call('HSET', meta, 'last_time', last_t) end
if lm_id ~= '' then
  redis.call('HSET', meta, 'lm', lm_id .. ' ' .. tostring(base + tonumber(lm_k)))
end
for _, name in ipairs(moves) do
  redis.call('HSET', meta, 'r:' .. name, heads[name])
  if stacks[name] == '' then redis.call('HDEL', meta, 'rd:' .. name)
  else redis.call('HSET', meta, 'rd:' .. name, stacks[name]) end
end
if writer == '' then
  local qn = tonumber(redis.call('HGET', meta, 'qn') or '0') or 0
  redis.call('HSET', meta, 'rl', redis.call('LLEN', log) + qn)
else
  redis.call('HSET', meta, 'rl', base + n_rec)
end
-- Live following (KEYS[3], the events stream): in this same step, one event per stored
-- message or ref move, so a follower reading from the last id it saw misses none.
-- ARGV from j: stream length (0: no events), n events, their indices in the batch.
local events, ev_len = KEYS[3], tonumber(ARGV[j] or '0') or 0
if events and ev_len > 0 then
  if mode == 'replace' then
    redis.call('XADD', events, 'MAXLEN', '~', ev_len, '*', 'k', 'rewrite')
  else
    for e = 1, tonumber(ARGV[j + 1]) do
      local k = tonumber(ARGV[j + 1 + e])
      if writer == '' then
        redis.call('XADD', events, 'MAXLEN', '~', ev_len, '*', 'k', 'rec', 'r', ARGV[6 + k],
                   'i', tostring(base + k))
      else  -- whose log it went to: its author, whatever the record claims
        redis.call('XADD', events, 'MAXLEN', '~', ev_len, '*', 'k', 'rec', 'r', ARGV[6 + k],
                   'i', tostring(base + k), 'w', writer)
      end
    end
  end
end
if ttl > 0 then
  -- The session's keys expire at one moment, or none does: a log left behind by the others
  -- is a conversation half gone. The owner's write gives every key one deadline again.
  local own = {meta, log, events}
  if writer == '' then
    redis.call('PEXPIRE', meta, ttl)
    local at = redis.call('PEXPIRETIME', meta)
    for k = 2, #own do redis.call('PEXPIREAT', own[k], at) end
    if mode == 'append' then
      for k = 4, #KEYS do redis.call('PEXPIREAT', KEYS[k], at) end
    end
  else
    -- A writer may not renew the others' logs (ARGV after its name). Its own keys take the
    -- deadline those share; once that is less than half the TTL away (or they do not share
    -- one), every key of the session is kept from expiring at all, until the owner writes.
    -- pcall: a selector granted before PERSIST was allowed loses only the keep-alive.
    local others, at, keep = {}, nil, false
    for k = 1, tonumber(ARGV[w_at + 1] or '0') or 0 do
      local key = ARGV[w_at + 1 + k]
      local when = redis.call('PEXPIRETIME', key)
      if when == -1 then keep = true
      elseif when >= 0 then
        others[#others + 1] = key
        if at == nil then at = when elseif at ~= when then keep = true end
      end
    end
    if at == nil then
      redis.call('PEXPIRE', meta, ttl)
      at = redis.call('PEXPIRETIME', meta)
    elseif redis.call('PTTL', others[1]) < ttl / 2 then
      keep = true
    end
    if keep then
      local held = true
      for _, key in ipairs(others) do
        local done = redis.pcall('PERSIST', key)
        if type(done) == 'table' and done.err then held = false end
      end
      for _, key in ipairs(own) do
        if held then redis.call('PERSIST', key) else redis.call('PEXPIREAT', key, at) end
      end
    else
      for _, key in ipairs(own) do redis.call('PEXPIREAT', key, at) end
    end
  end
end
return redis.call('HGETALL', meta)
"""

# KEYS: log, backup. ARGV: ttl ms. Returns -1 (no session), 0 (backup name taken), 1 (copied).
_BACKUP = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('COPY', KEYS[1], KEYS[2]) == 0 then return 0 end
if tonumber(ARGV[1]) > 0 then redis.call('PEXPIRE', KEYS[2], ARGV[1]) end
return 1
"""


# Back up and delete in one step: nothing appended in between can be lost.
_REMOVE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('COPY', KEYS[1], KEYS[3]) == 0 then return 0 end
if tonumber(ARGV[1]) > 0 then redis.call('PEXPIRE', KEYS[3], ARGV[1]) end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
"""


# Rename a session's keys in one step. KEYS: old meta, old log, new meta, new log, the alias
# hash, then (old, new) pairs of backup keys. ARGV: old id, new id, the meta record, its id
# value, its renamed_from value. Returns -1 (no session), 0 (new id taken), 1 (renamed).
# RENAME keeps each key's TTL; the meta record is counted as the write script counts records.
_RENAME = rediscluster.STAMP + """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('EXISTS', KEYS[3]) == 1 or redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[3])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('RENAME', KEYS[2], KEYS[4]) end
stamp(KEYS[3], KEYS[4], ARGV[3], ARGV[4], ARGV[5])
local ttl = redis.call('PTTL', KEYS[3])
if ttl > 0 then redis.call('PEXPIRE', KEYS[4], ttl) end
redis.call('HDEL', KEYS[5], ARGV[2])
redis.call('HSET', KEYS[5], ARGV[1], ARGV[2])
for i = 6, #KEYS - 1, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 and redis.call('EXISTS', KEYS[i + 1]) == 0 then
    redis.call('RENAME', KEYS[i], KEYS[i + 1])
  end
end
return 1
"""
ALIASES_KEY = f"{PREFIX}:aliases"  # a hash: former id -> new id


def _import_redis():
    try:
        import redis
    except ImportError:
        raise ConfigError("sessions.storage.type is redis, but the redis client is not installed",
                          hint="pip install 'aish[redis]'") from None
    return redis


class Connection:
    """A redis-py client plus a URL safe to show (no password) and an error guard."""

    def __init__(self, url: str | None):
        self._redis = _import_redis()
        url = url or DEFAULT_URL
        plain = rediscluster.cluster_url(url)
        self.cluster = plain is not None  # a Redis Cluster: see aish.store.rediscluster
        try:
            # A plain client first, also for a cluster's URL: it checks the options (redis-py
            # checks them only when it connects) and tells what to show of the URL.
            probe = self._redis.Redis.from_url(
                plain or url, socket_connect_timeout=5, socket_timeout=30,
                decode_responses=False)
            kwargs = probe.connection_pool.connection_kwargs
            probe.connection_pool.connection_class(**kwargs)
        except (ValueError, TypeError) as exc:
            reason = str(exc).replace(url, "<url>")[:200]
            raise ConfigError("sessions.storage.url: not a usable Redis URL",
                              hint=f"expected redis://HOST:PORT/DB ({reason})") from None
        self.errors = self._redis.exceptions
        self._password = kwargs.get("password") or None
        self.username = str(kwargs.get("username") or "default")
        ssl = issubclass(probe.connection_pool.connection_class, self._redis.SSLConnection)
        scheme = "rediss" if ssl else "redis"
        if kwargs.get("path"):
            self.url = f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
        elif self.cluster:
            self.url = (f"{scheme}+cluster://{kwargs.get('host', '127.0.0.1')}:"
                        f"{kwargs.get('port', 6379)}")
        else:
            self.url = (f"{scheme}://{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)}"
                        f"/{kwargs.get('db', 0)}")
        self.client = probe
        if plain is not None:
            with self.guard("reach the cluster"):  # it asks a node for the others right away
                self.client = rediscluster.open_client(
                    plain, socket_connect_timeout=5, socket_timeout=30, decode_responses=False)

    def _clean(self, exc: BaseException) -> str:
        text = (str(exc).strip() or type(exc).__name__).splitlines()[0][:200]
        if self._password:
            text = text.replace(str(self._password), "***")
        return text

    @contextlib.contextmanager
    def guard(self, what: str):
        """Turn redis-py errors into StorageError naming the server (never its password)."""
        errors = self.errors
        try:
            yield
        except (errors.ConnectionError, errors.TimeoutError) as exc:
            raise StorageError(f"cannot reach Redis at {self.url}: {self._clean(exc)}",
                               hint="is redis-server running? see sessions.storage.url"
                               ) from None
        except errors.RedisClusterException as exc:  # no node reachable, a slot not served
            raise StorageError(f"Redis Cluster at {self.url} could not {what}: "
                               f"{self._clean(exc)}",
                               hint="are its nodes running? see sessions.storage.url") from None
        except errors.RedisError as exc:
            if not self.cluster and isinstance(exc, (errors.AskError, errors.ClusterDownError)):
                raise StorageError(
                    f"Redis at {self.url} is a node of a Redis Cluster", hint="name it with "
                    "redis+cluster://HOST:PORT in sessions.storage.url") from None
            if (isinstance(exc, errors.NoPermissionError) or "NOPERM" in str(exc)
                    or "can't access" in str(exc)):
                # The server's ACL rules refused this user: a role, not a fault.
                raise PermissionDenied(
                    f"Redis at {self.url} refused to {what} for this user: "
                    f"{self._clean(exc)}", hint="ask the session's owner for a role") from None
            raise StorageError(f"Redis at {self.url} could not {what}: {self._clean(exc)}"
                               ) from None


def connect(url: str | None) -> Connection:
    return Connection(url)


def _number(value: object, kind=int):
    try:
        number = kind(value)
    except (TypeError, ValueError, OverflowError):
        return kind(0)
    if kind is float and not math.isfinite(number):
        return 0.0
    return number


def summary_from_hash(fields: dict, sid: str) -> Summary:
    """Rebuild a Summary from the hash; fields that do not decode are skipped, never raised."""
    summary = Summary()
    changes: dict[str, object] = {}
    for raw_key, raw_value in fields.items():
        key = raw_key.decode("utf-8", "replace") if isinstance(raw_key, bytes) else str(raw_key)
        value = raw_value.decode("utf-8", "replace") if isinstance(raw_value, bytes) else raw_value
        if key.startswith("m:"):
            try:
                if len(value) <= MAX_LINE_CHARS:
                    summary.meta[key[2:]] = json.loads(value)
            except (ValueError, TypeError, RecursionError):
                continue
        elif key.startswith("ai:"):
            summary.by_ai[key[3:]] = _number(value)
        elif key == "n:messages":
            summary.messages = _number(value)
        elif key == "n:user_messages":
            summary.user_messages = _number(value)
        elif key == "n:tokens":
            summary.tokens = _number(value)
        elif key == "last_time":
            summary.last_time = _number(value, float)
        elif key.startswith("r:"):
            summary.tree.refs[key[2:]] = decode_head(value)
        elif key.startswith("rd:"):
            summary.tree.redo[key[3:]] = [decode_head(h) for h in value.split(";") if h]
        elif key == "lm":
            summary.tree.last = decode_head(value)
        elif key.startswith("mb:"):
            with contextlib.suppress(ValueError, TypeError, RecursionError):
                changes[key[3:]] = json.loads(value)
    if changes:  # each person's latest grant over the members the session was stored with
        found = summary.meta.get("members")
        found = dict(found) if isinstance(found, dict) else {}
        for user, grant in changes.items():
            if isinstance(grant, dict):
                found[user] = grant
            else:
                found.pop(user, None)
        summary.meta["members"] = found
    summary.meta["id"] = sid  # the keys name the session, whatever a damaged header says
    return summary


def _member_changes(records: list[dict]) -> dict[str, dict | None]:
    """The grants (None: revocations) an append makes, by person: each its own hash field,
    so two owners sharing at once with different people both keep theirs."""
    out: dict[str, dict | None] = {}
    for record in records:
        if record.get("t") != "meta":
            continue
        whole = record.get("members")  # as an older aish wrote them: every grant at once
        if isinstance(whole, dict):
            out.update({u: g for u, g in whole.items() if isinstance(u, str)})
        change = record.get("member")
        if isinstance(change, dict) and isinstance(change.get("user"), str):
            grant = {k: v for k, v in change.items() if k != "user"}
            out[change["user"]] = None if grant.get("role") is None else grant
    return out


def _stale(fields: dict, length: int) -> bool:
    """The hash's branch heads do not cover every record of the logs (an older aish wrote, or
    stored the session before branches existed); ``length``: the owner's log's."""
    covered = fields.get(b"rl", b"0")
    return not covered.isdigit() or int(covered) != length + _number(fields.get(b"qn", b"0"))


def _event_args(length: int, records: list[dict]) -> list:
    """The write script's last arguments: which records of the batch become events of the
    session's stream (its messages and ref moves), and how long the stream is kept."""
    if length <= 0:
        return [0, 0]
    picked = [k for k, record in enumerate(records) if record.get("t") in ("msg", "ref")]
    return [length, len(picked), *picked]


def _pairs(flat: list) -> dict:
    return dict(zip(flat[::2], flat[1::2], strict=False))


def decode_records(items: list, codec) -> tuple[list[tuple[int, dict]], list[Problem], list[str]]:
    """Parse the log's elements like the file store parses lines, collecting problems."""
    records, problems, bad = [], [], []
    for number, raw in enumerate(items, start=1):
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        try:
            if isinstance(raw, bytes):
                raw.decode("utf-8")
            record = parse_line(text)
            if record["t"] == "msg":
                record = codec.open(record)
        except UnicodeDecodeError:
            problems.append(Problem(number, "bad record", "not UTF-8"))
            bad.append(text)
            continue
        except ValueError as exc:
            problems.append(Problem(number, "bad record", str(exc)[:120]))
            bad.append(text)
            continue
        records.append((number, record))
    return records, problems, bad


class RedisStore:
    def __init__(self, url: str | None, codec=None, timeout_minutes: float = 60.0,
                 max_session_bytes: int = 64 * 1024 * 1024,
                 retention_days: float = RETENTION_DAYS, stream_length: int = 10_000):
        self.connection = connect(url)
        self.stream_length = stream_length  # events kept per session for followers (~)
        self.client = self.connection.client
        self.url = self.connection.url
        self.codec = codec or PlainCodec()
        self.max_session_bytes = max_session_bytes
        self.ttl_ms = int((timeout_minutes * 60 + retention_days * 86400) * 1000)
        self._write = self.client.register_script(_WRITE)
        self._backup = self.client.register_script(_BACKUP)
        self._remove = self.client.register_script(_REMOVE)
        self._rename = self.client.register_script(_RENAME)
        if codec is None:
            with self._guard("check for encryption"):
                encrypted = self.client.exists(CRYPTO_KEY)
            if encrypted:
                raise ConfigError(f"the sessions at {self.url} are encrypted",
                                  hint="set sessions.storage.encrypt: true and provide the key")

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r})"

    # -- people ----------------------------------------------------------------------------
    def whoami(self) -> str:
        """The connection's ACL user, asked once (a script cannot ask it): the author of what
        this store writes, as the server's ACL rules see it."""
        cached = getattr(self, "_whoami", None)
        if cached is None:
            try:
                with self._guard("tell who this is"):
                    answer = self.client.execute_command("ACL", "WHOAMI")
                cached = (answer.decode("utf-8", "replace") if isinstance(answer, bytes)
                          else str(answer))
            except AishError:  # a server before ACLs, or a user not let ask: the URL's
                cached = self.connection.username
            self._whoami = cached
        return cached

    def grant_access(self, sid: str, user: str, role: str | None):
        """Apply ``user``'s role in ``sid`` (None: none) as the server's ACL rules, when this
        connection may; an `aish.people_acl.Applied` says what happened."""
        from aish.people_acl import apply

        check_id(sid)
        with self._guard("change ACL rules"):
            if not self.connection.cluster:
                return apply(self.client, self.connection.errors, PREFIX, sid, user, role)
            # A cluster's nodes do not share ACL rules: each node gets them, and the first
            # that refuses says what an admin must run.
            for node in self.client.get_nodes():
                applied = apply(node.redis_connection, self.connection.errors, PREFIX, sid,
                                user, role)
                if not applied.applied:
                    return applied
            return applied

    def access_held(self, sid: str, user: str) -> bool | None:
        """Whether the server's ACL rules still give ``user`` a role in ``sid`` (None: this
        connection may not ask)."""
        from aish.people_acl import held

        check_id(sid)
        with self._guard("read ACL rules"):
            return held(self.client, self.connection.errors, PREFIX, sid, user)

    # -- keys ------------------------------------------------------------------------------
    def _key(self, sid: str, part: str) -> str:
        return f"{PREFIX}:{{{check_id(sid)}}}:{part}"

    def _log_key(self, sid: str, writer: str = "") -> str:
        """The owner's log (``writer`` ""), or a writer's own (`aish.store.writerlogs`)."""
        return self._key(sid, f"log:{writer}" if writer else "log")

    def _logs(self, sid: str, fields: dict) -> list[str]:
        """Every log key of the session, the owner's first."""
        return [self._log_key(sid)] + [self._log_key(sid, w) for w in writers(fields)]

    def _read_all(self, sid: str) -> tuple[dict, list[bytes]]:
        """The meta hash and every record of the session in its order, read atomically (a
        writer that joined between reading the hash and the logs: read again)."""
        client = self.client
        known: list[str] = []
        for _ in range(10):
            pipe = client.pipeline(transaction=True)
            pipe.hgetall(self._key(sid, "meta"))
            pipe.lrange(self._log_key(sid), 0, -1)
            for name in known:
                pipe.lrange(self._log_key(sid, name), 0, -1)
            fields, owner, *rest = pipe.execute()
            found = writers(fields)
            if set(found) <= set(known):
                lists = dict(zip(known, rest, strict=True))
                return fields, merge(owner, {w: lists[w] for w in found}) if found else owner
            known = found
        raise StorageError(f"session {sid} kept changing while it was read; try again")

    def _medium(self, sid: str, fields: dict, length: int):
        """Single records of the session by place: its one log as it is, or every log merged."""
        names = writers(fields)
        if not names:
            return _ListMedium(self.client, self._log_key(sid), length)
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.llen(self._log_key(sid, name))
        logs = [("", self._log_key(sid), length)]
        logs += [(n, self._log_key(sid, n), count)
                 for n, count in zip(names, pipe.execute(), strict=True)]
        return MergedMedium(self.client, logs)

    def _doc_key(self, kind: str, name: str) -> str:
        if kind not in DOC_KINDS:
            raise ValueError(kind)
        parts = [check_id(p, "name") for p in name.split("/")]
        return f"{PREFIX}:doc:{kind}:{'/'.join(parts)}"

    def session_key(self, sid: str, part: str) -> str:
        """The key of one part of a session (``events``, ``floor:BRANCH``), for the live
        followers and the floor leases beside the store."""
        return self._key(sid, part)

    def session_scan(self, sid: str, pattern: str) -> list[str]:
        """The keys of session ``sid`` that match ``pattern``. A session lives in one slot, so
        on a cluster only the master serving that slot is scanned, not every master."""
        where = {}
        if self.connection.cluster:
            where["target_nodes"] = self.client.get_node_from_key(self._key(sid, "meta"))
        return [k.decode("utf-8", "replace")
                for k in self.client.scan_iter(match=pattern, count=_SCAN_COUNT, **where)]

    def location(self, sid: str) -> str:
        return f"{self.url} {PREFIX}:{{{check_id(sid)}}}"

    def _guard(self, what: str):
        return self.connection.guard(what)

    # -- reading -----------------------------------------------------------------------------
    def exists(self, sid: str) -> bool:
        with self._guard("check a session"):
            return bool(self.client.exists(self._key(sid, "meta")))

    def ids(self) -> list[str]:
        found = set()
        start, end = f"{PREFIX}:{{", "}:meta"
        with self._guard("list sessions"):
            for key in self.client.scan_iter(match=f"{start}*{end}", count=_SCAN_COUNT):
                text = key.decode("utf-8", "replace")
                sid = text[len(start):-len(end)]
                if ID_PATTERN.fullmatch(sid) and ".." not in sid:
                    found.add(sid)
        return sorted(found)

    def summary(self, sid: str) -> Summary:
        with self._guard("read a session"):
            pipe = self.client.pipeline(transaction=True)
            pipe.hgetall(self._key(sid, "meta"))
            pipe.llen(self._key(sid, "log"))
            fields, length = pipe.execute()
        if not fields:
            raise SessionNotFound(f"session {sid} not found")
        if _stale(fields, length):
            try:
                return self._rebuild_tree(sid)
            except PermissionDenied:  # a viewer may not store the fold: it reads it anyway
                return summary_from_hash(self._folded(sid, fields), sid)
        return summary_from_hash(fields, sid)

    def _folded(self, sid: str, fields: dict) -> dict:
        """``fields`` with the branch heads folded from the log in memory, not stored."""
        with self._guard("read a session"):
            _, items = self._read_all(sid)
        tree = RefState()
        for index, raw in enumerate(items):
            with contextlib.suppress(UnicodeDecodeError, ValueError):
                tree.fold(parse_line(raw.decode("utf-8")), index)
        kept = {k: v for k, v in fields.items()
                if not (k.startswith((b"r:", b"rd:")) or k == b"lm")}
        return {**kept, **{k.encode(): v.encode() for k, v in tree.to_fields().items()}}

    def _rebuild_tree(self, sid: str) -> Summary:
        """Fold the branch heads again from the log: after an older aish appended records
        without updating them, or for a session it stored (see "rl" in the write script)."""
        meta = self._key(sid, "meta")
        watch_error = self.connection.errors.WatchError
        with self._guard("read a session"):
            for _ in range(20):
                with self.client.pipeline(transaction=True) as pipe:
                    try:
                        logs = self._logs(sid, self.client.hgetall(meta))
                        pipe.watch(meta, *logs)
                        if not pipe.exists(meta):  # removed meanwhile: nothing to rebuild
                            raise SessionNotFound(f"session {sid} not found")
                        fields = pipe.hgetall(meta)
                        if self._logs(sid, fields) != logs:
                            continue  # a writer joined meanwhile
                        lists = {name: pipe.lrange(self._log_key(sid, name), 0, -1)
                                 for name in writers(fields)}
                        items = merge(pipe.lrange(logs[0], 0, -1), lists)
                        counts = {name: len(found) for name, found in lists.items()}
                        old = [k for k in fields
                               if k.startswith((b"r:", b"rd:")) or k == b"lm"]
                        tree = RefState()
                        for index, raw in enumerate(items):
                            with contextlib.suppress(UnicodeDecodeError, ValueError):
                                tree.fold(parse_line(raw.decode("utf-8")), index)
                        pipe.multi()
                        if old:
                            pipe.hdel(meta, *old)
                        pipe.hset(meta, mapping={
                            **tree.to_fields(), "rl": len(items), "qn": sum(counts.values()),
                            **{f"wn:{name}": n for name, n in counts.items()}})
                        pipe.hgetall(meta)
                        fields = pipe.execute()[-1]
                    except watch_error:
                        continue
                return summary_from_hash(fields, sid)
        raise StorageError(f"session {sid} kept changing while it was read; try again")

    def summaries(self) -> list[Summary]:
        ids = self.ids()
        out = []
        with self._guard("list sessions"):
            for start in range(0, len(ids), 500):
                batch = ids[start:start + 500]
                pipe = self.client.pipeline(transaction=False)
                for sid in batch:
                    pipe.hgetall(self._key(sid, "meta"))
                # A session this user's ACL rules hide (another team's) is left out, not
                # an error for the whole listing.
                results = pipe.execute(raise_on_error=False)
                for sid, fields in zip(batch, results, strict=True):
                    if isinstance(fields, Exception):
                        if isinstance(fields, self.connection.errors.NoPermissionError):
                            continue
                        raise fields
                    if fields:  # an empty hash: expired or removed while we listed
                        out.append(summary_from_hash(fields, sid))
        return out

    def _items(self, sid: str) -> tuple[list[bytes], bytes | None]:
        """The session's records (every log's, in order) and the rewrite generation they
        belong to, read atomically."""
        with self._guard("read a session"):
            fields, items = self._read_all(sid)
        if not fields and not items:
            raise SessionNotFound(f"session {sid} not found")
        return items, fields.get(b"gen")

    def raw_lines(self, sid: str) -> list[str]:
        """The log's records as text lines, ending with "" like a file that ends in a newline."""
        return [raw.decode("utf-8", "replace") for raw in self._items(sid)[0]] + [""]

    def skeleton(self, sid: str) -> Loaded | None:
        """None: Redis keeps no skeleton of the tree; drawing reads the log whole (one LRANGE)."""
        return None

    def tallies(self, sid: str) -> None:
        """None: Redis keeps no tally; reports count from the log read whole."""
        return None

    def load(self, sid: str) -> Loaded:
        items, gen = self._items(sid)
        records, problems, bad = decode_records(items, self.codec)
        loaded = fold_records(records, problems)
        loaded.raw_bad = bad
        loaded.mark = (gen, len(items))  # for replace(since=): the generation and length read
        return loaded

    def tail(self, sid: str, pairs: int) -> list[Message]:
        """The last ``pairs`` user messages of ``main`` and what follows them (0: all)."""
        return self.path(sid, None, pairs)

    def path(self, sid: str, head: Head | None, pairs: int) -> list[Message]:
        """The path from the root to ``head`` (None: ``main``'s), limited to its last ``pairs``
        user messages and what follows them (0: all), oldest first.

        Walked through parent links by absolute index (appends do not shift them); started
        again if a rewrite bumped ``gen`` meanwhile.
        """
        meta, log = self._key(sid, "meta"), self._key(sid, "log")
        for _ in range(5):
            with self._guard("read a session"):
                pipe = self.client.pipeline(transaction=True)
                pipe.hget(meta, "gen")
                pipe.llen(log)
                pipe.hgetall(meta)
                gen, length, fields = pipe.execute()
                if not fields:
                    raise SessionNotFound(f"session {sid} not found")
                if head is None and _stale(fields, length):
                    try:
                        self._rebuild_tree(sid)
                        continue
                    except PermissionDenied:  # a viewer: fold it for this read only
                        fields = self._folded(sid, fields)
                start = head or summary_from_hash(fields, sid).head(MAIN) or Head("")
                found = walk(self._medium(sid, fields, length), self._message, start, pairs)
                if self.client.hget(meta, "gen") != gen:
                    continue
            if found is None:
                found = self.load(sid).path(start)
                if pairs > 0:
                    found = _last_pairs(found, pairs)
            return found
        raise StorageError(f"session {sid} kept being rewritten while it was read; try again")

    def message(self, sid: str, head: Head) -> Message | None:
        """The message ``head`` names: one element read where it says, else scanned for."""
        with self._guard("read a session"):
            pipe = self.client.pipeline(transaction=True)
            pipe.hgetall(self._key(sid, "meta"))
            pipe.llen(self._log_key(sid))
            fields, length = pipe.execute()
            return find_message(self._medium(sid, fields, length), self._message, head)

    def _message(self, raw: bytes) -> Message | None:
        try:
            record = parse_line(raw.decode("utf-8"))
            if record["t"] != "msg":
                return None
            return Message.from_record(self.codec.open(record))
        except (UnicodeDecodeError, ValueError, KeyError, TypeError, OverflowError):
            return None

    # -- writing -----------------------------------------------------------------------------
    def _encode_one(self, record: dict) -> bytes:
        return self._encode([record])[0]

    def _encode(self, records: list[dict]) -> list[bytes]:
        return [dump_line(self.codec.seal(r) if r.get("t") == "msg" else r)[:-1]
                for r in records]

    def _write_args(self, mode: str, sid: str, records: list[dict], fresh: bool,
                    extra: Sequence[bytes] = (), encoded: list[bytes] | None = None,
                    writer: str = "", others: Sequence[str] = ()) -> tuple[list, list]:
        """KEYS and ARGV of the write script: ``records`` (``encoded``: already in their
        stored form), then ``extra`` (already stored elements, kept as they are), and the
        summary delta of both. A fresh log's refs are folded here; an append's ref moves are
        checked and applied by the script, against the refs as they are when it runs."""
        items = (self._encode(records) if encoded is None else list(encoded)) + list(extra)
        all_records = list(records)
        for raw in extra:
            with contextlib.suppress(UnicodeDecodeError, ValueError):
                all_records.append(parse_line(raw.decode("utf-8")))
                continue
            all_records.append({})
        delta = Summary()
        moves: list = []
        last_msg: list = ["", ""]
        for index, record in enumerate(all_records):
            delta.fold(record, index)
            if not fresh:
                move = move_of(record, index, Head(last_msg[0]))
                if move is not None:
                    frm = "!" if move.frm is None else ANY if move.frm == ANY else "=" + move.frm
                    if move.soft:  # follows the last message before it, or is skipped
                        frm = "~=" + last_msg[0] if last_msg[0] else "~"
                    k = index if record.get("t") == "msg" else -1
                    moves += [move.name, frm, move.to, k,
                              "" if move.pos is None or k >= 0 else move.pos, move.op]
            if record.get("t") == "msg" and message_id(record.get("id")):
                last_msg = [record["id"], index]
        if fresh:
            delta.meta.setdefault("id", sid)
        fields: list = []
        for key, value in delta.meta.items():
            if key == "members" and not fresh:
                continue  # one field per person instead (below)
            fields += [f"m:{key}", json.dumps(value, ensure_ascii=False)]
        if not fresh:
            for user, grant in _member_changes(all_records).items():
                fields += [f"mb:{user}", json.dumps(grant, ensure_ascii=False)]
        if fresh:
            fields += ["v", str(FORMAT_VERSION)]
            for key, value in delta.tree.to_fields().items():
                fields += [key, value]
            last_msg = ["", ""]  # already among the fields
        counters: list = []
        for key, value in (("n:messages", delta.messages),
                           ("n:user_messages", delta.user_messages), ("n:tokens", delta.tokens)):
            counters += [key, str(value)]
        for ai, count in delta.by_ai.items():
            counters += [f"ai:{ai}", str(count)]
        last = delta.last_time if math.isfinite(delta.last_time) else 0.0
        size = sum(len(item) + 1 for item in items)  # +1: the newline the file store writes
        args = [mode, self.ttl_ms, self.max_session_bytes, size, len(items), *items,
                len(fields) // 2, *fields, len(counters) // 2, *counters, repr(last),
                *last_msg, len(moves) // 6, *moves]
        args += [*_event_args(self.stream_length, all_records[:len(records)]), writer]
        keys = [self._key(sid, "meta"), self._log_key(sid, writer), self._key(sid, "events")]
        if writer:  # the others' logs, kept alive (see the script); not its keys: not its own
            args += [len(others), *others]
        else:
            keys += others
        return keys, args

    def _run_write(self, mode: str, sid: str, records: list[dict], fresh: bool,
                   encoded: list[bytes] | None = None) -> Summary:
        """Push ``records`` and fold them into the summary hash, atomically."""
        writer, others = "", []
        if not fresh:
            with self._guard("write a session"):
                fields = self.client.hgetall(self._key(sid, "meta"))
            writer = self._writer(sid, fields)
            others = [k for k in self._logs(sid, fields) if k != self._log_key(sid, writer)]
        keys, args = self._write_args(mode, sid, records, fresh, encoded=encoded,
                                      writer=writer, others=others)
        with self._guard("write a session"):
            try:
                flat = self._write(keys=keys, args=args)
            except self.connection.errors.ResponseError as exc:
                if "AISH_STALE" not in str(exc):
                    self._script_error(str(exc), sid)
                    raise
                self._rebuild_tree(sid)
                try:
                    flat = self._write(keys=keys, args=args)
                except self.connection.errors.ResponseError as again:
                    self._script_error(str(again), sid)
                    raise
        return summary_from_hash(_pairs(flat), sid)

    # -- who writes which log (aish.store.writerlogs) ----------------------------------------
    def _writer(self, sid: str, fields: dict) -> str:
        """Whose log this connection writes in ``sid``: "" for the owner's (its owner, an
        unnamed user, a session without members), else its own ACL user's."""
        from aish.people import UNKNOWN, owner_of
        from aish.store.authors import signer

        name = signer(self.whoami())
        if name is None or not fields:
            return ""
        owner = owner_of(summary_from_hash(fields, sid).meta)
        return "" if owner in (UNKNOWN, name) else name

    def authorship(self, sid: str) -> dict:
        """Which authored records of ``sid`` the log they are in vouches for
        (`aish.store.authors.check`)."""
        from aish.people import owner_of
        from aish.store.authors import check

        with self._guard("read who wrote a session"):
            pipe = self.client.pipeline(transaction=True)
            pipe.hgetall(self._key(sid, "meta"))
            pipe.lrange(self._log_key(sid), 0, -1)
            fields, owner_items = pipe.execute()
            names = writers(fields)
            pipe = self.client.pipeline(transaction=True)
            for name in names:
                pipe.lrange(self._log_key(sid, name), 0, -1)
            lists = dict(zip(names, pipe.execute() if names else [], strict=True))
        if not fields:
            raise SessionNotFound(f"session {sid} not found")
        logs = {"": owner_items, **lists}
        records = {}
        for name, items in logs.items():
            # A writer's records are read as stored (the stamp aside), ``by`` as claimed.
            decoded, _, _ = decode_records([unstamped(raw) for raw in items], self.codec)
            records[name] = [r for _, r in decoded]
        return check(owner_of(summary_from_hash(fields, sid).meta), records)

    def _script_error(self, text: str, sid: str) -> None:
        if "AISH_EXISTS" in text:
            raise SessionExists(f"session {sid} already exists") from None
        if "AISH_MISSING" in text:
            raise SessionNotFound(f"session {sid} not found") from None
        if "AISH_REF" in text:
            words = text[text.index("AISH_REF"):].split(" ", 2)
            current = decode_head(words[2]) if len(words) > 2 and words[2] != "-" else None
            raise RefMoved(words[1] if len(words) > 1 else MAIN, current) from None
        if "AISH_TOO_BIG" in text:
            raise LimitError(
                f"session {sid} would exceed the session size limit "
                f"({self.max_session_bytes} bytes)",
                hint="prune it with aish --prune-session ID --keep-recent N",
            ) from None

    def create(self, meta: dict, messages: Sequence[Message] = (),
               refs: dict[str, str] | None = None) -> Summary:
        """A new log holding ``meta``, ``messages`` and the branch heads ``refs``."""
        sid = check_id(meta["id"])
        rewritten = rewrite_records(sid, meta, messages, refs, self._encode_one, False)
        return self._run_write("create", sid, [r for r, _ in rewritten], fresh=True,
                               encoded=[line for _, line in rewritten])

    def append(self, sid: str, records: list[dict]) -> Summary:
        check_id(sid)
        try:
            return self._run_write("append", sid, records, fresh=False)
        except SessionNotFound:
            # Renamed meanwhile: the records belong to the session under its new id.
            target = (rediscluster.forwarded(self, sid) if self.connection.cluster
                      else self.alias(sid))
            if target is None:
                raise
        return self._run_write("append", target, records, fresh=False)

    def replace(self, sid: str, meta: dict, messages: list[Message],
                since: object = None, refs: dict[str, str] | None = None) -> Summary:
        """Rewrite the log as ``meta`` + ``messages`` (see FileStore.replace for ``since``)."""
        rewritten = rewrite_records(sid, meta, messages, refs, self._encode_one, False)
        records = [record for record, _ in rewritten]
        encoded = [line for _, line in rewritten]
        if since is None:
            with self._guard("write a session"):
                others = self._logs(sid, self.client.hgetall(self._key(sid, "meta")))[1:]
                keys, args = self._write_args("replace", sid, records, True, encoded=encoded,
                                              others=others)
                flat = self._write(keys=keys, args=args)
            return summary_from_hash(_pairs(flat), sid)
        try:
            # A mark is opaque to callers; a foreign one fails to unpack (TypeError, below).
            gen, offset = cast("tuple[Any, Any]", since)
            offset = int(offset)
        except (TypeError, ValueError):
            raise ValueError(f"not a mark of this store: {since!r}") from None
        hash_key = self._key(sid, "meta")
        watch_error = self.connection.errors.WatchError
        with self._guard("rewrite a session"):
            for _ in range(50):  # optimistic: retried while other writers append meanwhile
                with self.client.pipeline(transaction=True) as pipe:
                    try:
                        logs = self._logs(sid, self.client.hgetall(hash_key))
                        pipe.watch(hash_key, *logs)
                        fields = pipe.hgetall(hash_key)
                        if fields.get(b"gen") != gen:
                            raise StorageError(
                                f"session {sid} was rewritten by another process meanwhile",
                                hint="run the command again")
                        if self._logs(sid, fields) != logs:
                            continue  # a writer joined meanwhile
                        lists = {name: pipe.lrange(self._log_key(sid, name), 0, -1)
                                 for name in writers(fields)}
                        extra = (merge(pipe.lrange(logs[0], 0, -1), lists)[offset:]
                                 if fields else [])
                        pipe.multi()
                        keys, args = self._write_args("replace", sid, records, True, extra,
                                                      encoded, others=logs[1:])
                        rediscluster.queue_script(self._write, pipe, keys, args,
                                                  self.connection.cluster)
                        flat = pipe.execute()[0]
                    except watch_error:
                        continue
                return summary_from_hash(_pairs(flat), sid)
        raise StorageError(f"session {sid} is too busy to rewrite; try again")

    def delete(self, sid: str) -> None:
        with self._guard("remove a session"):
            logs = self._logs(sid, self.client.hgetall(self._key(sid, "meta")))
            self.client.delete(self._key(sid, "meta"), *logs)

    def remove(self, sid: str, reason: str) -> str:
        """Back up and delete atomically; returns the backup's location."""
        return self.backup(sid, reason, remove=True)

    def backup(self, sid: str, reason: str, remove: bool = False) -> str:
        """Copy the log to ``aish:{id}:backup:<stamp>-<reason>`` (kept for the retention TTL)."""
        check_id(reason, "backup reason")
        stamp = time.strftime("%Y%m%dT%H%M%S")
        log = self._key(sid, "log")
        retention = max(self.ttl_ms, 0)
        with self._guard("back up a session"):
            for n in range(1, 1000):
                name = f"{stamp}-{reason}" + (f"-{n}" if n > 1 else "")
                key = self._key(sid, f"backup:{name}")
                if writers(self.client.hgetall(self._key(sid, "meta"))):
                    done = self._backup_merged(sid, key, retention, remove)
                elif remove:
                    done = self._remove(keys=[log, self._key(sid, "meta"), key],
                                        args=[retention])
                else:
                    done = self._backup(keys=[log, key], args=[retention])
                if done == -1:
                    raise SessionNotFound(f"session {sid} not found")
                if done == 1:
                    return f"{self.url} {key}"
        raise StorageError(f"too many backups of session {sid} this second")  # pragma: no cover

    def _backup_merged(self, sid: str, key: str, retention: int, remove: bool) -> int:
        """`backup` of a session kept in several logs: one list of every record in order,
        as the file store would hold it (the scripts' answers: -1, 0 or 1)."""
        meta = self._key(sid, "meta")
        watch_error = self.connection.errors.WatchError
        for _ in range(50):  # optimistic: retried while writers append meanwhile
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    logs = self._logs(sid, self.client.hgetall(meta))
                    pipe.watch(meta, key, *logs)
                    fields = pipe.hgetall(meta)
                    if not fields:
                        return -1
                    if pipe.exists(key):
                        return 0
                    if self._logs(sid, fields) != logs:
                        continue
                    lists = {name: pipe.lrange(self._log_key(sid, name), 0, -1)
                             for name in writers(fields)}
                    items = merge(pipe.lrange(logs[0], 0, -1), lists)
                    pipe.multi()
                    if items:
                        pipe.rpush(key, *items)
                    if retention > 0:
                        pipe.pexpire(key, retention)
                    if remove:
                        pipe.delete(meta, *logs)
                    pipe.execute()
                    return 1
                except watch_error:
                    continue
        raise StorageError(f"session {sid} is too busy to back up; try again")

    def backups(self, sid: str) -> list[str]:
        """Locations of the session's backups, oldest first."""
        pattern = self._key(sid, "backup:*")
        with self._guard("list backups"):
            keys = sorted(self.session_scan(sid, pattern))
        return [f"{self.url} {key}" for key in keys]

    def read_backup(self, location: str) -> bytes | None:
        """A backup's records as JSON lines (what a file store backup holds), or None.

        ``location`` is what `backup` returned, or just its key.
        """
        key = location.split()[-1] if location.strip() else ""
        head = f"{PREFIX}:{{"
        if not key.startswith(head) or ":backup:" not in key:
            return None
        sid = key[len(head):key.find("}")]
        if not ID_PATTERN.fullmatch(sid):
            return None
        with self._guard("read a backup"):
            items = self.client.lrange(key, 0, -1)
        return b"".join(item + b"\n" for item in items) if items else None

    # -- renames ---------------------------------------------------------------------------
    def aliases(self) -> dict[str, str]:
        with self._guard("read session aliases"):
            raw = self.client.hgetall(ALIASES_KEY)
        return parse_aliases({k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
                              for k, v in raw.items()})

    def alias(self, sid: str) -> str | None:
        return follow_alias(self.aliases(), check_id(sid), self.exists)

    def rename(self, old: str, new: str) -> Summary:
        """Move every key of ``old`` to ``new`` (backups too) and record the alias, in one
        script: a writer either appended before it or finds the old keys gone and follows the
        alias (see `append`)."""
        check_id(old)
        check_id(new)
        if old == new:
            raise SessionExists(f"session {old} already has that id")
        start = self._key(old, "backup:")
        own = self._key(old, "log:")  # each writer's own log moves too
        with self._guard("rename a session"):
            backups = self.session_scan(old, start + "*")
            logs = self._logs(old, self.client.hgetall(self._key(old, "meta")))[1:]
            if self.connection.cluster:  # two slots: no one script may touch both
                rediscluster.rename(self, old, new, backups, logs)
                return self.summary(new)
            pairs = [key for b in backups
                     for key in (b, self._key(new, "backup:") + b[len(start):])]
            pairs += [key for b in logs for key in (b, self._key(new, "log:") + b[len(own):])]
            # Followers' events go along, so one resuming after the rename misses nothing.
            pairs += [self._key(old, "events"), self._key(new, "events")]
            record = dump_line({"t": "meta", "id": new, "renamed_from": old})[:-1]
            done = self._rename(
                keys=[self._key(old, "meta"), self._key(old, "log"), self._key(new, "meta"),
                      self._key(new, "log"), ALIASES_KEY, *pairs],
                args=[old, new, record, json.dumps(new), json.dumps(old)])
        if done == -1:
            raise SessionNotFound(f"session {old} not found")
        if done == 0:
            raise SessionExists(f"session {new} already exists")
        return self.summary(new)

    # -- named documents: templates and checkpoints ----------------------------------------
    def put_doc(self, kind: str, name: str, data: dict) -> str:
        key = self._doc_key(kind, name)
        payload = json.dumps(seal_doc(self.codec, data))  # ASCII: safe for any str content
        with self._guard(f"save a {kind[:-1]}"):
            self.client.set(key, payload.encode("ascii"))
        return f"{self.url} {key}"

    def get_doc(self, kind: str, name: str) -> dict | None:
        key = self._doc_key(kind, name)
        with self._guard(f"read a {kind[:-1]}"):
            raw = self.client.get(key)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return open_doc(self.codec, data)
        except (ValueError, RecursionError) as exc:
            raise StorageError(f"{kind[:-1]} {name} is unreadable: {str(exc)[:120]}") from None

    def list_docs(self, kind: str) -> list[str]:
        if kind not in DOC_KINDS:
            raise ValueError(kind)
        start = f"{PREFIX}:doc:{kind}:"
        with self._guard(f"list {kind}"):
            names = {k.decode("utf-8", "replace")[len(start):]
                     for k in self.client.scan_iter(match=f"{start}*", count=_SCAN_COUNT)}
        return sorted(n for n in names if ID_PATTERN.fullmatch(n))  # never a hostile name

    # -- tombstones: deletions that sync must not undo -------------------------------------
    def tombstones(self) -> dict[str, dict]:
        start, end = f"{PREFIX}:{{", "}:tomb"
        out = {}
        with self._guard("list deletions"):
            keys = list(self.client.scan_iter(match=f"{start}*{end}", count=_SCAN_COUNT))
            pipe = self.client.pipeline(transaction=False)  # one slot per key: no MGET
            for key in keys:
                pipe.get(key)
            values = pipe.execute() if keys else []
        for key, raw in zip(keys, values, strict=True):
            sid = key.decode("utf-8", "replace")[len(start):-len(end)]
            if raw is not None and ID_PATTERN.fullmatch(sid) and ".." not in sid:
                record = parse_tombstone(raw, sid)
                if record is not None:
                    out[sid] = record
        return out

    def add_tombstone(self, record: dict) -> None:
        key = self._key(record["id"], "tomb")
        sid = record["id"]
        watch_error = self.connection.errors.WatchError
        with self._guard("record a deletion"):
            for _ in range(50):  # optimistic: two machines may record deletions at once
                with self.client.pipeline(transaction=True) as pipe:
                    try:
                        pipe.watch(key)
                        raw = pipe.get(key)
                        old = parse_tombstone(raw, sid) if raw is not None else None
                        merged = merge_tombstones(old, record)
                        pipe.multi()
                        pipe.set(key, json.dumps(merged).encode("ascii"),
                                 px=int(TOMBSTONE_SECONDS * 1000))
                        pipe.execute()
                        return
                    except watch_error:
                        continue
        raise StorageError(f"session {sid} is too busy to record a deletion; try again")

    def skip(self, sid: str, reason: str) -> None:
        """A Redis session is never unusable the way a linked log file is: nothing to warn."""

    def fix_modes(self, sid: str) -> list[str]:
        return []  # access to a Redis server is the server's business, not file modes


class _ListMedium:
    """Reads single records of a session's list by index, for `aish.store.base.walk`; what
    one step fetched serves the next (a parent is usually stored just before its child)."""

    def __init__(self, client, key: str, length: int):
        self.client, self.key, self.length = client, key, length
        self.cache: dict[int, bytes] = {}
        self.size = 8  # records fetched before the one asked for; doubles as a walk goes on

    def at(self, pos: int) -> bytes | None:
        if not 0 <= pos < self.length:
            return None
        if pos not in self.cache:
            self._fetch(max(0, pos - self.size + 1), pos)
            self.size = min(self.size * 2, _MAX_CHUNK)
        return self.cache.get(pos)

    def _fetch(self, start: int, stop: int) -> None:
        for offset, item in enumerate(self.client.lrange(self.key, start, stop)):
            self.cache[start + offset] = item

    def before(self, pos: int | None):
        index = (self.length if pos is None else min(pos, self.length)) - 1
        while index >= 0:
            if index not in self.cache:
                self._fetch(max(0, index - self.size + 1), index)
                self.size = min(self.size * 2, _MAX_CHUNK)
                if index not in self.cache:  # the list was cut meanwhile (a rewrite)
                    return
            yield self.cache[index], index
            index -= 1
