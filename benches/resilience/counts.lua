-- wrk script: GET /v1/accounts/ACCOUNT/devices/IMEI over the keys in `keys`
-- (prepended by the caller: `keys = {...}`, `account = "..."`, `pause_ms = N`),
-- counting answers by kind. Prints one `counts` line at the end for the caller
-- to parse.
local n = 0
local threads = {}

function setup(thread)
    thread:set("id", #threads)
    table.insert(threads, thread)
end

function init(args)
    -- Each thread starts at its own offset, so threads do not read in lockstep.
    n = id * 7919
    ok, stale, shed, shed_retry_after, other = 0, 0, 0, 0, 0
end

function request()
    n = n + 1
    local imei = keys[(n % #keys) + 1]
    return wrk.format("GET", "/v1/accounts/" .. account .. "/devices/" .. imei)
end

function delay()
    return pause_ms
end

function response(status, headers, body)
    if status == 200 then
        if headers["x-cache"] == "STALE" then
            stale = stale + 1
        else
            ok = ok + 1
        end
    elseif status == 503 then
        shed = shed + 1
        if headers["retry-after"] ~= nil then
            shed_retry_after = shed_retry_after + 1
        end
    else
        other = other + 1
    end
end

function done(summary, latency, requests)
    local t = { ok = 0, stale = 0, shed = 0, shed_retry_after = 0, other = 0 }
    for _, thread in ipairs(threads) do
        for k, _ in pairs(t) do
            t[k] = t[k] + (thread:get(k) or 0)
        end
    end
    io.write(string.format("counts ok=%d stale=%d s503=%d s503_retry_after=%d other=%d\n",
        t.ok, t.stale, t.shed, t.shed_retry_after, t.other))
end
