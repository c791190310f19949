#include "model/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/error.h"
#include "model/llama.h"

namespace clara {

namespace {

using Clock = std::chrono::steady_clock;

// [B, V] logits -> [B] next tokens.
mx::array sample(const mx::array& logits, const GenerateOptions& o, const mx::array& key) {
  if (o.temperature <= 0) return mx::argmax(logits, -1);
  mx::array scaled = mx::divide(mx::astype(logits, mx::float32), mx::array(o.temperature));
  if (o.top_p < 1.0f) {
    // Keep the smallest set of tokens whose probability mass reaches top_p (always the best one).
    mx::array order = mx::argsort(mx::negative(scaled), -1);
    mx::array sorted = mx::take_along_axis(scaled, order, -1);
    mx::array probs = mx::softmax(sorted, -1);
    mx::array before = mx::subtract(mx::cumsum(probs, -1), probs);  // mass of strictly better tokens
    mx::array keep = mx::less(before, mx::array(o.top_p));
    mx::array masked = mx::where(keep, sorted, mx::array(-INFINITY));
    mx::array choice = mx::random::categorical(masked, -1, key);
    return mx::squeeze(mx::take_along_axis(order, mx::expand_dims(choice, -1), -1), -1);
  }
  return mx::random::categorical(scaled, -1, key);
}

}  // namespace

GenerateResult generate(const Model& model, const mx::array& embeddings, const std::optional<mx::array>& key_valid,
                        const std::string& adapter, const GenerateOptions& options, const VocabExtension* extension) {
  if (options.max_tokens < 0) invalid_argument("generate", "max_tokens must be >= 0");
  const ModelConfig& c = model.config();
  int B = embeddings.shape(0), L = embeddings.shape(1);
  GenerateResult result;
  result.tokens.resize(B);
  result.stopped.assign(B, false);
  result.prompt_tokens = L;
  if (options.max_tokens == 0) return result;

  ParamView p = model.view();
  ActiveAdapter active = model.active(adapter, false);
  KVCache cache = make_kv_cache(c, B, L + options.max_tokens, model.dtype());
  std::optional<mx::array> valid = key_valid ? std::optional<mx::array>(mx::astype(*key_valid, mx::bool_)) : std::nullopt;
  mx::array key = mx::random::key(options.seed);

  auto start = Clock::now();
  mx::array hidden = decoder_hidden(p, c, embeddings, valid, active, &cache);
  mx::array last = mx::squeeze(mx::slice(hidden, {0, L - 1, 0}, {B, L, c.hidden_size}), 1);
  auto [k0, k1] = mx::random::split(key);
  key = k0;
  mx::array next = sample(lm_logits(p, c, last, extension), options, k1);
  mx::eval(next);
  result.prefill_seconds = std::chrono::duration<double>(Clock::now() - start).count();

  start = Clock::now();
  for (int step = 0; step < options.max_tokens; ++step) {
    mx::array as_int = mx::astype(next, mx::int32);
    mx::eval(as_int);
    const int32_t* ids = as_int.data<int32_t>();
    int active_rows = 0;
    for (int b = 0; b < B; ++b) {
      if (result.stopped[b]) continue;
      int t = ids[b];
      bool is_stop = std::find(options.stop_tokens.begin(), options.stop_tokens.end(), t) != options.stop_tokens.end();
      if (is_stop) {
        result.stopped[b] = true;
      } else {
        result.tokens[b].push_back(t);
        ++active_rows;
      }
    }
    if (active_rows == 0 || step + 1 == options.max_tokens) break;
    if (valid) valid = mx::concatenate({*valid, mx::ones({B, 1}, mx::bool_)}, 1);
    mx::array x = embed_tokens(p, mx::reshape(as_int, {B, 1}), extension);
    mx::array h = decoder_hidden(p, c, x, valid, active, &cache);
    auto [ka, kb] = mx::random::split(key);
    key = ka;
    next = sample(lm_logits(p, c, mx::squeeze(h, 1), extension), options, kb);
    mx::eval(next);
  }
  result.decode_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

}  // namespace clara
