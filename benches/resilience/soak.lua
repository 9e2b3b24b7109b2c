-- wrk script for the soak: rotates over `reqs` (prepended by soak.sh: a list of
-- {method, path, body}), counting answers. An answer is good when it is HTTP 200
-- and has no GraphQL `errors`; stale answers are good (and counted apart).
local n = 0
local threads = {}

function setup(thread)
    thread:set("id", #threads)
    table.insert(threads, thread)
end

function init(args)
    n = id * 997
    good, stale, bad_status, gql_errors = 0, 0, 0, 0
end

function request()
    n = n + 1
    local r = reqs[(n % #reqs) + 1]
    if r[3] then
        return wrk.format(r[1], r[2], { ["Content-Type"] = "application/json" }, r[3])
    end
    return wrk.format(r[1], r[2])
end

function delay()
    return pause_ms
end

function response(status, headers, body)
    if status ~= 200 then
        bad_status = bad_status + 1
    elseif string.find(body, '"errors"', 1, true) then
        gql_errors = gql_errors + 1
    else
        good = good + 1
        if headers["x-cache"] == "STALE" then
            stale = stale + 1
        end
    end
end

function done(summary, latency, requests)
    local t = { good = 0, stale = 0, bad_status = 0, gql_errors = 0 }
    for _, thread in ipairs(threads) do
        for k, _ in pairs(t) do
            t[k] = t[k] + (thread:get(k) or 0)
        end
    end
    local e = summary.errors
    io.write(string.format("counts good=%d stale=%d bad_status=%d gql_errors=%d socket_errors=%d\n",
        t.good, t.stale, t.bad_status, t.gql_errors,
        e.connect + e.read + e.write + e.timeout))
end
