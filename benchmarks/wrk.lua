-- The wrk script of benchmarks/bench.py: one scenario per wrk run.
--
--   wrk -t1 -c8 -d<hard limit>s -s wrk.lua URL -- SCENARIO SECONDS NONCE
--       NAMES_FILE ITEMS WRITE_SHARE
--
-- SCENARIO: read-list (GET /?format=json: the first 50 names), read-item
-- (GET /item-N?format=json, N random in 0..ITEMS-1), write-add (POST / a
-- new item named new-<uuid4>), write-counter (POST /counter/@@increment),
-- mixed (each request a write-add with probability WRITE_SHARE, else a
-- read-item). Writes carry the bench user's HTTP Basic credentials and a
-- JSON body, as the ready app asks of API clients (the peer ignores them).
--
-- Scenario requests are sent for SECONDS (measured with the monotonic
-- clock from the first request); after that the script sends only
-- GET /bench-tail (a 404 on every app, not counted) until every scenario
-- request has been answered, then prints BENCH-DRAINED: bench.py then
-- stops wrk with SIGINT. So every write sent got its answer, and the
-- database must hold exactly the acknowledged writes. Responses are
-- counted by status (all of them, and those that arrived before the
-- deadline: the rate); the Location of every 201 goes to NAMES_FILE. At
-- the end one line: BENCH-JSON {...}.

local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local write_headers = {
  ["Content-Type"] = "application/json",
  ["Accept"] = "application/json",
  -- bench:bench-password (benchmarks/common.py's BENCH_USER)
  ["Authorization"] = "Basic YmVuY2g6YmVuY2gtcGFzc3dvcmQ=",
}
local items, write_share
local list_request, counter_request, tail_request
local t0, deadline
local drained = false
local verified = false

-- Globals: done() (in wrk's main Lua state) reads them from each thread
-- with thread:get().
scenario = nil
seconds = nil
names_path = nil
sent = 0      -- scenario requests sent
answered = 0  -- scenario responses (any status)
tail = 0      -- tail (404) responses
statuses = {} -- status -> count, every scenario response
window = {}   -- status -> count, responses before the deadline
added = {}    -- Location of each 201

function init(args)
  scenario = args[1]
  seconds = tonumber(args[2])
  math.randomseed(tonumber(args[3]) + 7919 * tid)
  names_path = args[4]
  items = tonumber(args[5])
  write_share = tonumber(args[6] or "0.1")
  list_request = wrk.format("GET", "/?format=json")
  counter_request = wrk.format(
    "POST", "/counter/@@increment", write_headers,
    '{"attribute": "counter", "by": 1}')
  tail_request = wrk.format("GET", "/bench-tail")
end

local function uuid4()
  local r = math.random
  return string.format(
    "%04x%04x-%04x-4%03x-%04x-%04x%04x%04x",
    r(0, 0xffff), r(0, 0xffff), r(0, 0xffff), r(0, 0xfff),
    0x8000 + r(0, 0x3fff), r(0, 0xffff), r(0, 0xffff), r(0, 0xffff))
end

local function read_item()
  return wrk.format(
    "GET", "/item-" .. math.random(0, items - 1) .. "?format=json")
end

local function write_add()
  return wrk.format(
    "POST", "/", write_headers,
    '{"name": "new-' .. uuid4() .. '", "type": "item"}')
end

function request()
  if tid == 1 and not verified then
    -- wrk calls request() once before the run, to check the request it
    -- builds (script_verify_request): never sent, not counted.
    verified = true
    return list_request
  end
  local t = now()
  if not t0 then
    t0 = t
    deadline = t0 + seconds
  end
  if t >= deadline then
    return tail_request
  end
  sent = sent + 1
  if scenario == "read-list" then
    return list_request
  elseif scenario == "read-item" then
    return read_item()
  elseif scenario == "write-counter" then
    return counter_request
  elseif scenario == "write-add" then
    return write_add()
  elseif math.random() < write_share then -- mixed
    return write_add()
  end
  return read_item()
end

function response(status, headers, body)
  local t = now()
  if status == 404 then
    tail = tail + 1
  else
    answered = answered + 1
    statuses[status] = (statuses[status] or 0) + 1
    if t < deadline then
      window[status] = (window[status] or 0) + 1
    end
    if status == 201 then
      added[#added + 1] = headers["Location"] or headers["location"] or "?"
    end
  end
  if not drained and deadline and t >= deadline and answered >= sent then
    drained = true
    io.write("BENCH-DRAINED\n")
    io.flush()
  end
end

local function merge(into, from)
  for k, v in pairs(from or {}) do
    into[k] = (into[k] or 0) + v
  end
end

local function json_counts(t)
  local parts = {}
  for k, v in pairs(t) do
    parts[#parts + 1] = string.format('"%s": %d', tostring(k), v)
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

function done(summary, latency, requests)
  local all, win = {}, {}
  local nsent, nanswered, ntail, nadded = 0, 0, 0, 0
  local first = threads[1]
  local scenario = first:get("scenario")
  local seconds = first:get("seconds")
  local names_path = first:get("names_path")
  local f = nil
  if names_path ~= "-" then
    f = assert(io.open(names_path, "w"))
  end
  for _, t in ipairs(threads) do
    merge(all, t:get("statuses"))
    merge(win, t:get("window"))
    nsent = nsent + t:get("sent")
    nanswered = nanswered + t:get("answered")
    ntail = ntail + t:get("tail")
    for _, loc in ipairs(t:get("added") or {}) do
      nadded = nadded + 1
      if f then
        f:write(loc, "\n")
      end
    end
  end
  if f then
    f:close()
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH-JSON {"scenario": "%s", "seconds": %f, "sent": %d, ' ..
    '"answered": %d, "tail": %d, "added": %d, "statuses": %s, ' ..
    '"window": %s, "p50_us": %d, "p99_us": %d, "mean_us": %f, ' ..
    '"max_us": %d, "wrk_requests": %d, "wrk_duration_us": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d}}\n',
    scenario, seconds, nsent, nanswered, ntail, nadded,
    json_counts(all), json_counts(win),
    latency:percentile(50), latency:percentile(99), latency.mean,
    latency.max, summary.requests, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout))
end
