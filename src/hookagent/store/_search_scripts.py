"""The search's Lua scripts (store/search.py explains the postings they read)."""

from __future__ import annotations

from hookagent.store.logs import CHUNK_COLUMNS

SCAN_CHUNKS = 50  # chunks per XRANGE when a query has no index term and scans whole logs

# Finds blocks holding every term. KEYS: the terms' posting sets; ARGV: the highest score
# (minus the oldest creation time wanted), how many postings of the rarest set to skip,
# how many blocks to return, how many postings to examine at most. Returns the offset to
# continue from (-1: no more), which set is the rarest (from 1), and the blocks in its order.
POSTINGS = """
local top, offset, wanted, budget = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4])
local rarest, size = 1, -1
for i, key in ipairs(KEYS) do
  local n = redis.call('ZCARD', key)
  if n == 0 then return {-1} end
  if size < 0 or n < size then rarest, size = i, n end
end
local out, seen = {0, rarest}, 0
while #out <= wanted + 1 and seen < budget do
  local page = redis.call('ZRANGE', KEYS[rarest], '-inf', top, 'BYSCORE', 'LIMIT', offset, 256)
  local stopped = false
  for _, member in ipairs(page) do
    offset, seen = offset + 1, seen + 1
    local all = true
    for i, key in ipairs(KEYS) do
      if i ~= rarest and not redis.call('ZSCORE', key, member) then all = false; break end
    end
    if all then out[#out + 1] = member end
    if #out > wanted + 1 or seen >= budget then stopped = true; break end
  end
  if not stopped and #page < 256 then offset = -1; break end
end
out[1] = offset
return out
"""

# Matching on the server, so a block costs a fraction of a millisecond instead of shipping
# its lines to Python. Lowercases ASCII only, like the index; needles arrive lowercased,
# the first ``plain`` ones those JSON leaves as they are (no quote, backslash, slash,
# control or non-ASCII character), the rarest first. A chunk whose JSON text lacks a plain
# needle is skipped. Otherwise, with a plain needle, the chunk is not decoded: each
# occurrence of the first needle lies in one message's JSON text, between two '","'
# separators (a quote inside a message is escaped, so that sequence never occurs in one),
# and only a line whose text holds every plain needle is decoded and checked in full. A
# common word over rare matches (a phrase, a rare pairing) then costs a few finds a chunk.
# The columns' positions come from store/logs.py's CHUNK_COLUMNS, the format's one
# definition; the line scan also relies on the messages being the first array in a chunk.
_MATCH = """
local out, found = {}, 0
local function at(rle, k)
  local i = 1
  while k > rle[i + 1] do k = k - rle[i + 1]; i = i + 2 end
  return rle[i]
end
local function holds(low)
  for _, needle in ipairs(needles) do
    if not string.find(low, needle, 1, true) then return false end
  end
  return true
end
local function add(c, i, first)
  out[#out + 1] = first + i - 1; out[#out + 1] = at(c[TIMESTAMPS], i)
  out[#out + 1] = at(c[STREAMS], i); out[#out + 1] = c[MESSAGES][i]
  found = found + 1
end
-- the position just after the last separator before s (r0 when there is none)
local function line_start(lowered, r0, s)
  local back = 128
  while true do
    local w0, last = math.max(r0, s - back), nil
    local q = w0
    while true do
      local a = string.find(lowered, '","', q, true)
      if not a or a >= s then break end
      last, q = a, a + 1
    end
    if last then return last + 3 end
    if w0 == r0 then return r0 end
    back = back * 4
  end
end
local function scan_lines(text, lowered, lo, hi, first)
  local r0 = (string.find(lowered, ',["', 1, true) or 0) + 3
  -- separators are counted once per chunk, from where the last count stopped
  local c, p, counted, lines = nil, r0, r0, 0
  while found < wanted do
    local s, e = string.find(lowered, needles[1], p, true)
    if not s then return end
    local start = line_start(lowered, r0, s)
    local stop = (string.find(lowered, '","', e + 1, true) or (#lowered + 1)) - 1
    local line, ok = string.sub(lowered, start, stop), true
    for k = 2, plain do
      if not string.find(line, needles[k], 1, true) then ok = false; break end
    end
    if ok then
      local _, more = string.gsub(string.sub(lowered, counted, start - 1), '","', '')
      counted, lines = start, lines + more
      local before, seq = lines, first + lines
      c = c or cjson.decode(text)
      local msg = c[MESSAGES][before + 1]
      if seq >= lo and seq < hi and msg and holds(string.lower(msg)) then
        add(c, before + 1, first)
      end
    end
    p = stop + 1
  end
end
local function scan(row, lo, hi)
  local text = ''
  for j = 1, #row[2], 2 do if row[2][j] == 'c' then text = row[2][j + 1] end end
  local lowered = string.lower(text)
  for n = 1, plain do
    if not string.find(lowered, needles[n], 1, true) then return end
  end
  local first = tonumber(string.sub(row[1], 3)) - 1
  if plain > 0 then return scan_lines(text, lowered, lo, hi, first) end
  local c = nil
  for i, low in ipairs(cjson.decode(lowered)[MESSAGES]) do
    local seq = first + i - 1
    if seq >= lo and seq < hi and holds(low) then
      c = c or cjson.decode(text)
      add(c, i, first)
      if found >= wanted then return end
    end
  end
end
"""
for _name in ("messages", "timestamps", "streams"):
    _MATCH = _MATCH.replace(_name.upper(), str(CHUNK_COLUMNS.index(_name) + 1))

# Scans a whole log (a query without index terms). ARGV: wanted, plain, needles.
SCAN = (
    """
local key, wanted, plain, needles = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), {}
for i = 3, #ARGV do needles[#needles + 1] = ARGV[i] end
"""
    + _MATCH
    + """
local start = '-'
while found < wanted do
  local rows = redis.call('XRANGE', key, start, '+', 'COUNT', SCAN_CHUNKS)
  for _, row in ipairs(rows) do
    scan(row, 0, math.huge)
    if found >= wanted then break end
  end
  if #rows < SCAN_CHUNKS then break end
  start = '(' .. rows[#rows][1]
end
return out
""".replace("SCAN_CHUNKS", str(SCAN_CHUNKS))
)

# Scans given blocks of task logs, in order, until ``wanted`` lines match in all. KEYS:
# the logs (one on a cluster, where a script touches one slot; every task of a round on a
# single server, so the page stops the scan wherever it fills). ARGV: wanted, plain, the
# needle count, the needles, then per log its block count and (first seq, lines) per
# block. Returns each log's matches. A block is read like a page (store/logs.py): the
# chunks starting inside it, and the chunk holding its first line if none starts there
# (a block is nearly always one chunk: one XRANGE); lines outside it are not looked at.
BLOCKS = (
    """
local wanted, plain, count = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local needles = {}
for i = 4, 3 + count do needles[#needles + 1] = ARGV[i] end
"""
    + _MATCH
    + """
local results, a = {}, 4 + count
for k, key in ipairs(KEYS) do
  out = {}
  local blocks = tonumber(ARGV[a])
  for b = 0, blocks - 1 do
    local lo = tonumber(ARGV[a + 1 + 2 * b])
    local hi = lo + tonumber(ARGV[a + 2 + 2 * b])
    if found < wanted then
      local start = '0-' .. (lo + 1)
      local rows = redis.call('XRANGE', key, start, '0-' .. hi)
      if not rows[1] or rows[1][1] ~= start then
        -- the block does not start a chunk: the chunk holding its first line comes first
        local head = redis.call('XREVRANGE', key, start, '-', 'COUNT', 1)
        if head[1] then table.insert(rows, 1, head[1]) end
      end
      for _, row in ipairs(rows) do
        if found < wanted then scan(row, lo, hi) end
      end
    end
  end
  results[k], a = out, a + 1 + 2 * blocks
end
return results
"""
)
