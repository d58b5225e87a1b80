#include "quota/redis_counters.h"

#include "core/clock.h"
#include "core/private_files.h"

#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

namespace codepilot::quota {
namespace {

// Per scope: KEYS requests-bucket, tokens-bucket, concurrency, daily, monthly;
// ARGV (after now): rpm, tpm, concurrency, daily, monthly (0: no limit).
constexpr const char* kAdmit = R"lua(
local now = tonumber(ARGV[1])
local n = #KEYS / 5
local function level(key, cap)
  local v = redis.call('HMGET', key, 't', 'at')
  local t, at = tonumber(v[1]), tonumber(v[2])
  if t == nil then return cap end
  return math.min(cap, t + (now - at) * cap / 60000)
end
local rl, tl = {}, {}
for i = 0, n - 1 do
  local k, a = i * 5, 1 + i * 5
  local rpm, tpm, conc = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local dl, ml = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  if conc > 0 and tonumber(redis.call('GET', KEYS[k + 3]) or '0') >= conc then return {0, i, 'concurrency', 1000} end
  if rpm > 0 then
    rl[i] = level(KEYS[k + 1], rpm)
    if rl[i] < 1 then return {0, i, 'requests', math.ceil((1 - rl[i]) * 60000 / rpm)} end
  end
  if tpm > 0 then
    tl[i] = level(KEYS[k + 2], tpm)
    if tl[i] <= 0 then return {0, i, 'tokens', math.ceil((1 - tl[i]) * 60000 / tpm)} end
  end
  for j, lim in ipairs({dl, ml}) do
    if lim > 0 then
      local used = redis.call('GET', KEYS[k + 3 + j])
      if not used then return {2, i, j == 1 and 'daily_tokens' or 'monthly_tokens', 0} end
      if tonumber(used) >= lim then return {0, i, j == 1 and 'daily_tokens' or 'monthly_tokens', 0} end
    end
  end
end
local out = {1, -1, '', 0}
for i = 0, n - 1 do
  local k, a = i * 5, 1 + i * 5
  if tonumber(ARGV[a + 1]) > 0 then
    redis.call('HSET', KEYS[k + 1], 't', rl[i] - 1, 'at', now)
    redis.call('PEXPIRE', KEYS[k + 1], 120000)
  end
  if tonumber(ARGV[a + 2]) > 0 then
    redis.call('HSET', KEYS[k + 2], 't', tl[i], 'at', now)
    redis.call('PEXPIRE', KEYS[k + 2], 120000)
  end
  redis.call('INCR', KEYS[k + 3])
  redis.call('PEXPIRE', KEYS[k + 3], 600000)
  table.insert(out, tostring(rl[i] or -1))
  table.insert(out, tostring(tl[i] or -1))
  table.insert(out, redis.call('GET', KEYS[k + 4]) or '-1')
  table.insert(out, redis.call('GET', KEYS[k + 5]) or '-1')
end
return out
)lua";

// Per scope: KEYS concurrency; ARGV extra, then the concurrency limit per scope (0: none).
// Takes `extra` more slots in every scope, or none when one would go over its limit.
constexpr const char* kWiden = R"lua(
local extra = tonumber(ARGV[1])
for i = 1, #KEYS do
  local conc = tonumber(ARGV[1 + i])
  if conc > 0 and tonumber(redis.call('GET', KEYS[i]) or '0') + extra > conc then return {0, i - 1} end
end
for i = 1, #KEYS do
  redis.call('INCRBY', KEYS[i], extra)
  redis.call('PEXPIRE', KEYS[i], 600000)
end
return {1, -1}
)lua";

// Per scope: KEYS tokens-bucket, concurrency, daily, monthly; ARGV now, tokens, slots held,
// then tpm per scope.
constexpr const char* kRelease = R"lua(
local now, tokens, slots = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 0, #KEYS / 4 - 1 do
  local k, tpm = i * 4, tonumber(ARGV[4 + i])
  local held = tonumber(redis.call('GET', KEYS[k + 2]) or '0')
  if held > 0 then redis.call('DECRBY', KEYS[k + 2], math.min(held, slots)) end
  if tokens > 0 then
    if tpm > 0 then
      local v = redis.call('HMGET', KEYS[k + 1], 't', 'at')
      local t, at = tonumber(v[1]), tonumber(v[2])
      if t == nil then t, at = tpm, now end
      t = math.min(tpm, t + (now - at) * tpm / 60000) - tokens
      redis.call('HSET', KEYS[k + 1], 't', t, 'at', now)
      redis.call('PEXPIRE', KEYS[k + 1], 120000)
    end
    for j = 3, 4 do
      if redis.call('EXISTS', KEYS[k + j]) == 1 then redis.call('INCRBY', KEYS[k + j], tokens) end
    end
  end
end
return 1
)lua";

std::string lim(const std::optional<int64_t>& v) {
    return v ? std::to_string(*v) : "0";
}

} // namespace

Result<std::unique_ptr<RedisCounters>> RedisCounters::connect(const config::QuotaConfig& quota) {
    auto address = config::parse_redis_url(quota.redis_url);
    if (!address) return address.error();
    std::shared_ptr<const RedisTls> tls;
    if (address->tls) {
        auto made = RedisTls::create(quota.redis_ca_file, quota.redis_cert_file, quota.redis_key_file);
        if (!made) return made.error();
        tls = std::move(*made);
    }
    auto counters = std::unique_ptr<RedisCounters>(new RedisCounters(*address, quota, std::move(tls)));
    // What the configuration allowed but an operator should hear about at every start.
    const bool loopback = config::is_loopback_host(address->host);
    const bool has_password = !quota.redis_password_file.empty() || !quota.redis_password_env.empty();
    if (!address->tls && !loopback)
        spdlog::warn(
            "quota: redis_allow_insecure: redis://{} is not TLS: the counters{} cross the network in "
            "clear",
            counters->peer_, has_password ? " and the AUTH password" : "");
    if (!has_password && !loopback)
        spdlog::warn("quota: Redis at {} without AUTH (quota.redis_password_file or redis_password_env): "
                     "whoever can reach it can change every tenant's counters",
                     counters->peer_);
    for (const auto& [key, file] : {std::pair{"redis_password_file", quota.redis_password_file},
                                    std::pair{"redis_key_file", quota.redis_key_file}})
        if (!file.empty())
            if (auto loose = looser_mode_warning(file, kPrivateFileMode))
                spdlog::warn("quota.{}: {}", key, *loose);
    if (auto password = read_secret(counters->password_); !password)
        spdlog::warn("quota: {}", password.error().message);
    if (auto st = counters->ensure_connected(); !st) // not fatal: the failure mode decides per call
        spdlog::warn("quota: {} (calls follow quota.redis_failure until Redis answers)", st.error().message);
    return counters;
}

RedisCounters::RedisCounters(config::RedisAddress address, const config::QuotaConfig& quota,
                             std::shared_ptr<const RedisTls> tls)
    : address_(std::move(address)),
      username_(quota.redis_username), password_{quota.redis_password_file, quota.redis_password_env,
                                                 "quota.redis_password_file", "quota.redis_password_env"},
      timeout_ms_(quota.redis_timeout_ms), tls_(std::move(tls)) {
    const bool v6 = address_.host.find(':') != std::string::npos;
    peer_ = (v6 ? "[" + address_.host + "]" : address_.host) + ":" + std::to_string(address_.port);
}

RedisCounters::~RedisCounters() = default;

Status RedisCounters::ensure_connected() {
    if (connection_ && !connection_->broken()) return Ok{};
    connection_.reset();
    const int64_t now = unix_millis();
    if (now < retry_at_ms_)
        return make_error(ErrorCode::unavailable, last_failure_ + " (retrying within 500 ms)");
    auto st = open_session();
    if (!st) {
        connection_.reset();
        retry_at_ms_ = now + 500; // do not stall every request on a dead server
        last_failure_ = st.error().message;
    }
    return st;
}

Status RedisCounters::open_session() {
    auto opened = RedisConnection::open(address_.host, address_.port, tls_, timeout_ms_);
    if (!opened) return opened.error();
    connection_ = std::move(*opened);
    auto unavailable = [this](const std::string& why) {
        return make_error(ErrorCode::unavailable, "redis " + peer_ + ": " + why);
    };
    // Read at each connect, so a rotated password applies from the next reconnect.
    auto password = read_secret(password_);
    if (!password) return unavailable(password.error().message);
    const bool named = !password_.file.empty() || !password_.env.empty();
    if (named && password->empty())
        return unavailable(std::string(password_.env.empty() ? password_.file_key : password_.env_key) +
                           " names an empty password");
    if (named) {
        std::vector<std::string> auth{"AUTH"};
        if (!username_.empty()) auth.push_back(username_);
        auth.push_back(*password);
        auto reply = connection_->command(auth);
        if (!reply) return reply.error();
        if ((*reply)->type == REDIS_REPLY_ERROR) // WRONGPASS, or AUTH without requirepass: never the password
            return unavailable("AUTH" + (username_.empty() ? std::string() : " as '" + username_ + "'") +
                               " refused: " + std::string((*reply)->str, (*reply)->len));
    }
    if (address_.db != 0) {
        auto reply = connection_->command({"SELECT", std::to_string(address_.db)});
        if (!reply) return reply.error();
        if ((*reply)->type == REDIS_REPLY_ERROR)
            return unavailable("SELECT " + std::to_string(address_.db) +
                               " failed: " + std::string((*reply)->str, (*reply)->len));
    }
    return Ok{};
}

Result<RedisReply> RedisCounters::command(const std::vector<std::string>& args) {
    if (auto st = ensure_connected(); !st) return st.error();
    auto reply = connection_->command(args);
    if (!reply) {
        connection_.reset();
        return reply.error();
    }
    if ((*reply)->type == REDIS_REPLY_ERROR) {
        std::string why((*reply)->str, (*reply)->len);
        // This Redis wants a password and none is configured (or it was just set): NOAUTH, or for
        // a long command "Protocol error: unauthenticated ...", after which Redis hangs up.
        if (why.rfind("NOAUTH", 0) == 0 || why.find("unauthenticated") != std::string::npos) {
            connection_.reset();
            return make_error(ErrorCode::unavailable,
                              "redis " + peer_ + ": " + why +
                                  " (set quota.redis_password_file or quota.redis_password_env)");
        }
        return make_error(ErrorCode::internal, "redis: " + why);
    }
    return std::move(*reply);
}

Result<SharedAdmission> RedisCounters::admit(const std::vector<ScopeCounters>& scopes, int64_t now_ms,
                                             const std::string& day, const std::string& month) {
    std::vector<std::string> args{"EVAL", kAdmit, std::to_string(scopes.size() * 5)};
    for (const auto& s : scopes)
        for (const std::string& k : {"cp:r:" + s.key, "cp:t:" + s.key, "cp:c:" + s.key,
                                     "cp:d:" + s.key + ":" + day, "cp:m:" + s.key + ":" + month})
            args.push_back(k);
    args.push_back(std::to_string(now_ms));
    for (const auto& s : scopes)
        for (const auto& v : {s.limits.rpm, s.limits.tpm, s.limits.concurrency, s.limits.daily_tokens,
                              s.limits.monthly_tokens})
            args.push_back(lim(v));
    std::lock_guard lock(mu_);
    auto reply = command(args);
    if (!reply) return reply.error();
    const redisReply* r = reply->get();
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 4)
        return make_error(ErrorCode::internal, "redis: unexpected reply");
    SharedAdmission a;
    const long long state = r->element[0]->integer;
    a.refused_scope = static_cast<size_t>(std::max<long long>(0, r->element[1]->integer));
    a.kind =
        r->element[2]->type == REDIS_REPLY_STRING ? std::string(r->element[2]->str, r->element[2]->len) : "";
    a.retry_after_ms = r->element[3]->integer;
    if (state == 2) {
        a.budget_missing = a.refused_scope;
        a.monthly_missing = a.kind == "monthly_tokens";
        return a;
    }
    a.allowed = state == 1;
    auto number = [&](size_t i) { return std::stod(std::string(r->element[i]->str, r->element[i]->len)); };
    for (size_t i = 4; i + 3 < r->elements; i += 4) {
        a.levels.emplace_back(number(i), number(i + 1));
        a.budgets_used.emplace_back(static_cast<int64_t>(number(i + 2)), static_cast<int64_t>(number(i + 3)));
    }
    return a;
}

Result<std::optional<size_t>> RedisCounters::widen(const std::vector<ScopeCounters>& scopes, int64_t extra) {
    if (scopes.empty() || extra <= 0) return std::optional<size_t>{};
    std::vector<std::string> args{"EVAL", kWiden, std::to_string(scopes.size())};
    for (const auto& s : scopes) args.push_back("cp:c:" + s.key);
    args.push_back(std::to_string(extra));
    for (const auto& s : scopes) args.push_back(lim(s.limits.concurrency));
    std::lock_guard lock(mu_);
    auto reply = command(args);
    if (!reply) return reply.error();
    const redisReply* r = reply->get();
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->element[0]->type != REDIS_REPLY_INTEGER)
        return make_error(ErrorCode::unavailable, "redis: unexpected reply to the widen script");
    if (r->element[0]->integer == 1) return std::optional<size_t>{};
    return std::optional<size_t>(static_cast<size_t>(r->element[1]->integer));
}

Status RedisCounters::release(const std::vector<ScopeCounters>& scopes, int64_t now_ms, int64_t tokens,
                              const std::string& day, const std::string& month, int64_t slots) {
    if (scopes.empty()) return Ok{};
    std::vector<std::string> args{"EVAL", kRelease, std::to_string(scopes.size() * 4)};
    for (const auto& s : scopes)
        for (const std::string& k :
             {"cp:t:" + s.key, "cp:c:" + s.key, "cp:d:" + s.key + ":" + day, "cp:m:" + s.key + ":" + month})
            args.push_back(k);
    args.push_back(std::to_string(now_ms));
    args.push_back(std::to_string(tokens));
    args.push_back(std::to_string(slots));
    for (const auto& s : scopes) args.push_back(lim(s.limits.tpm));
    std::lock_guard lock(mu_);
    if (auto reply = command(args); !reply) return reply.error();
    return Ok{};
}

Status RedisCounters::init_budget(const std::string& key, bool monthly, const std::string& period,
                                  int64_t used) {
    std::string k = (monthly ? "cp:m:" : "cp:d:") + key + ":" + period;
    std::lock_guard lock(mu_);
    if (auto reply = command({"SET", k, std::to_string(used), "NX", "EX", monthly ? "3000000" : "100000"});
        !reply)
        return reply.error();
    return Ok{};
}

} // namespace codepilot::quota
