#pragma once

// The JSON mapping of the message types, made from their inspect(): the
// fields named there (cadre::meta::field) are written and read by these two
// inspectors, so a field is listed once. Private to messages/.

#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include <caf/meta/annotation.hpp>

#include "cadre/messages/json_field.hpp"
#include "cadre/messages/json_value.hpp"

namespace cadre::detail {

template <class T, class = void>
struct has_empty : std::false_type {};

template <class T>
struct has_empty<T, std::void_t<decltype(std::declval<const T&>().empty())>>
  : std::true_type {};

/// Visits the fields of one inspect() call in order, handing each value with
/// the name that precedes it to `on_field(field, value)`.
template <class Derived>
class json_inspector {
public:
  template <class... Ts>
  void operator()(Ts&&... xs) {
    (visit(xs), ...);
  }

private:
  template <class T>
  void visit(T& x) {
    using type = std::remove_const_t<T>;
    if constexpr (std::is_same_v<type, meta::field_t>) {
      next_ = x;
    } else if constexpr (!caf::meta::is_annotation<type>::value) {
      // A field inspect() did not name is a bug of the message's header;
      // json_mapping_test sees it first.
      if (next_.name == nullptr)
        throw std::logic_error("cadre: a message field without a JSON name");
      static_cast<Derived*>(this)->on_field(next_, x);
      next_ = meta::field_t{nullptr, meta::plain};
    }
  }

  meta::field_t next_{nullptr, meta::plain};
};

/// Writes a message as a JSON object.
class json_writer : public json_inspector<json_writer> {
public:
  static constexpr bool reads_state = true;
  static constexpr bool writes_state = false;

  explicit json_writer(json& out) : out_(out) {
    out_ = json::object();
  }

  template <class T>
  void on_field(const meta::field_t& f, const T& x) {
    if constexpr (std::is_arithmetic_v<T>) {
      if ((f.flags & meta::omit_empty) && x == T{})
        return;
      if ((f.flags & meta::omit_negative) && x < T{})
        return;
    } else if constexpr (has_empty<T>::value) {
      if ((f.flags & meta::omit_empty) && x.empty())
        return;
    }
    if constexpr (std::is_same_v<T, json_value>)
      out_[f.name] = x.get();
    else
      out_[f.name] = x;
  }

private:
  json& out_;
};

/// Reads a message from a JSON object: an absent or null key keeps the
/// field's default (a json_value takes the null), unless it is required.
/// A value of the wrong type throws json::exception, as get_to does.
class json_reader : public json_inspector<json_reader> {
public:
  static constexpr bool reads_state = false;
  static constexpr bool writes_state = true;

  explicit json_reader(const json& in) : in_(in) {
  }

  template <class T>
  void on_field(const meta::field_t& f, T& x) {
    if (f.flags & meta::required) {
      read(in_.at(f.name), x);
      return;
    }
    auto i = in_.find(f.name);
    if (i == in_.end())
      return;
    if constexpr (!std::is_same_v<T, json_value>)
      if (i->is_null())
        return;
    read(*i, x);
  }

private:
  template <class T>
  static void read(const json& j, T& x) {
    if constexpr (std::is_same_v<T, json_value>)
      x = json_value{j};
    else
      j.get_to(x);
  }

  const json& in_;
};

template <class T>
void write_json(json& j, const T& x) {
  json_writer f{j};
  inspect(f, const_cast<T&>(x));
}

template <class T>
void read_json(const json& j, T& x) {
  json_reader f{j};
  inspect(f, x);
}

} // namespace cadre::detail

/// Defines to_json and from_json of message type T from its inspect().
#define CADRE_JSON_MAPPING(T)                                                  \
  void to_json(json& j, const T& x) {                                          \
    detail::write_json(j, x);                                                  \
  }                                                                            \
  void from_json(const json& j, T& x) {                                        \
    detail::read_json(j, x);                                                   \
  }
