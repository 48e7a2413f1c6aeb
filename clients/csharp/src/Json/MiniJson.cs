// The built-in JSON serializer: enough for the control frames, the error
// answers, the tests and simple DTOs. Unity users may plug in JsonUtility or
// Newtonsoft instead (IJsonSerializer).

using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Reflection;
using System.Text;

namespace ZinxCluster.Client
{
    /// <summary>
    /// A small reflection-based JSON serializer with no dependency.
    /// </summary>
    /// <remarks>
    /// Writes: null, strings, booleans, numbers, enums (as numbers), arrays,
    /// lists and other enumerables (as arrays; <c>byte[]</c> too, like serde's
    /// <c>Vec&lt;u8&gt;</c>), dictionaries (as objects), and any other object
    /// by its public instance fields and readable properties (anonymous types
    /// included), in declaration order.
    /// Reads into: <c>object</c> (a tree of <c>Dictionary&lt;string, object&gt;</c>,
    /// <c>List&lt;object&gt;</c>, string, bool, long, ulong, double, null), the
    /// primitive types, string, enums, <c>Nullable&lt;T&gt;</c>, arrays,
    /// <c>List&lt;T&gt;</c>, <c>Dictionary&lt;string, T&gt;</c>, and classes or
    /// structs with a parameterless constructor (public fields and settable
    /// properties matched by name, exactly first, then ignoring case; unknown
    /// keys are skipped). Dates, tuples and polymorphism are not supported.
    /// </remarks>
    public sealed class MiniJson : IJsonSerializer
    {
        /// <summary>Nesting deeper than this is refused (cycles, hostile input).</summary>
        public const int MaxDepth = 64;

        /// <summary>A shared instance (the serializer has no state).</summary>
        public static readonly MiniJson Instance = new MiniJson();

        /// <inheritdoc />
        public string Serialize(object value)
        {
            var sb = new StringBuilder();
            Write(sb, value, 0);
            return sb.ToString();
        }

        /// <inheritdoc />
        public T Deserialize<T>(string json)
        {
            return (T)Bind(Parse(json), typeof(T), 0);
        }

        /// <summary>
        /// The JSON text as a tree: <c>Dictionary&lt;string, object&gt;</c>,
        /// <c>List&lt;object&gt;</c>, string, bool, long (integers that fit),
        /// ulong (larger ones), double, or null.
        /// </summary>
        /// <exception cref="FormatException">The text is not one JSON value.</exception>
        public static object Parse(string json)
        {
            if (json == null)
            {
                throw new ArgumentNullException("json");
            }
            var p = new Parser(json);
            p.SkipSpace();
            var value = p.ReadValue(0);
            p.SkipSpace();
            if (p.Pos != json.Length)
            {
                throw p.Error("text after the JSON value");
            }
            return value;
        }

        // ---- writing ----

        static void Write(StringBuilder sb, object value, int depth)
        {
            if (depth > MaxDepth)
            {
                throw new InvalidOperationException("MiniJson: nesting deeper than " + MaxDepth + " (a cycle?)");
            }
            if (value == null)
            {
                sb.Append("null");
                return;
            }
            var s = value as string;
            if (s != null)
            {
                WriteString(sb, s);
                return;
            }
            if (value is bool)
            {
                sb.Append((bool)value ? "true" : "false");
                return;
            }
            if (value is char)
            {
                WriteString(sb, value.ToString());
                return;
            }
            var type = value.GetType();
            if (type.IsEnum)
            {
                sb.Append(Convert.ToInt64(value, CultureInfo.InvariantCulture).ToString(CultureInfo.InvariantCulture));
                return;
            }
            if (value is float || value is double)
            {
                var d = Convert.ToDouble(value, CultureInfo.InvariantCulture);
                if (double.IsNaN(d) || double.IsInfinity(d))
                {
                    sb.Append("null");
                }
                else
                {
                    sb.Append(value is float
                        ? ((float)value).ToString("R", CultureInfo.InvariantCulture)
                        : d.ToString("R", CultureInfo.InvariantCulture));
                }
                return;
            }
            if (value is sbyte || value is byte || value is short || value is ushort || value is int
                || value is uint || value is long || value is ulong || value is decimal)
            {
                sb.Append(((IFormattable)value).ToString(null, CultureInfo.InvariantCulture));
                return;
            }
            var dict = value as IDictionary;
            if (dict != null)
            {
                sb.Append('{');
                var first = true;
                foreach (DictionaryEntry e in dict)
                {
                    if (!first)
                    {
                        sb.Append(',');
                    }
                    first = false;
                    WriteString(sb, Convert.ToString(e.Key, CultureInfo.InvariantCulture));
                    sb.Append(':');
                    Write(sb, e.Value, depth + 1);
                }
                sb.Append('}');
                return;
            }
            var list = value as IEnumerable;
            if (list != null)
            {
                sb.Append('[');
                var first = true;
                foreach (var item in list)
                {
                    if (!first)
                    {
                        sb.Append(',');
                    }
                    first = false;
                    Write(sb, item, depth + 1);
                }
                sb.Append(']');
                return;
            }
            sb.Append('{');
            var firstMember = true;
            foreach (var f in type.GetFields(BindingFlags.Public | BindingFlags.Instance))
            {
                if (f.IsNotSerialized)
                {
                    continue;
                }
                Member(sb, ref firstMember, f.Name, f.GetValue(value), depth);
            }
            foreach (var p in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
            {
                if (!p.CanRead || p.GetIndexParameters().Length != 0 || p.GetGetMethod() == null)
                {
                    continue;
                }
                Member(sb, ref firstMember, p.Name, p.GetValue(value, null), depth);
            }
            sb.Append('}');
        }

        static void Member(StringBuilder sb, ref bool first, string name, object value, int depth)
        {
            if (!first)
            {
                sb.Append(',');
            }
            first = false;
            WriteString(sb, name);
            sb.Append(':');
            Write(sb, value, depth + 1);
        }

        static void WriteString(StringBuilder sb, string s)
        {
            sb.Append('"');
            foreach (var c in s)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    case '\b': sb.Append("\\b"); break;
                    case '\f': sb.Append("\\f"); break;
                    default:
                        if (c < 0x20)
                        {
                            sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                        }
                        else
                        {
                            sb.Append(c);
                        }
                        break;
                }
            }
            sb.Append('"');
        }

        // ---- binding a parsed tree to a type ----

        static object Bind(object node, Type t, int depth)
        {
            if (depth > MaxDepth)
            {
                throw new FormatException("MiniJson: nesting deeper than " + MaxDepth);
            }
            if (t == typeof(object))
            {
                return node;
            }
            var underlying = Nullable.GetUnderlyingType(t);
            if (node == null)
            {
                return t.IsValueType && underlying == null ? Activator.CreateInstance(t) : null;
            }
            if (underlying != null)
            {
                return Bind(node, underlying, depth);
            }
            if (t == typeof(string))
            {
                var s = node as string;
                if (s == null)
                {
                    throw Mismatch(node, t);
                }
                return s;
            }
            if (t == typeof(bool))
            {
                if (!(node is bool))
                {
                    throw Mismatch(node, t);
                }
                return node;
            }
            if (t.IsEnum)
            {
                var name = node as string;
                if (name != null)
                {
                    return Enum.Parse(t, name, true);
                }
                if (node is long || node is ulong)
                {
                    return Enum.ToObject(t, node);
                }
                throw Mismatch(node, t);
            }
            if (t == typeof(char))
            {
                var s = node as string;
                if (s == null || s.Length != 1)
                {
                    throw Mismatch(node, t);
                }
                return s[0];
            }
            if (t.IsPrimitive || t == typeof(decimal))
            {
                if (!(node is long || node is ulong || node is double))
                {
                    throw Mismatch(node, t);
                }
                try
                {
                    return Convert.ChangeType(node, t, CultureInfo.InvariantCulture);
                }
                catch (OverflowException)
                {
                    throw new FormatException("MiniJson: " + node + " does not fit in " + t.Name);
                }
            }
            if (t.IsArray)
            {
                var items = node as List<object>;
                if (items == null)
                {
                    throw Mismatch(node, t);
                }
                var elem = t.GetElementType();
                var arr = Array.CreateInstance(elem, items.Count);
                for (var i = 0; i < items.Count; i++)
                {
                    arr.SetValue(Bind(items[i], elem, depth + 1), i);
                }
                return arr;
            }
            if (t.IsGenericType)
            {
                var def = t.GetGenericTypeDefinition();
                var args = t.GetGenericArguments();
                if (def == typeof(List<>) || def == typeof(IList<>) || def == typeof(ICollection<>)
                    || def == typeof(IEnumerable<>) || def == typeof(IReadOnlyList<>))
                {
                    var items = node as List<object>;
                    if (items == null)
                    {
                        throw Mismatch(node, t);
                    }
                    var list = (IList)Activator.CreateInstance(typeof(List<>).MakeGenericType(args[0]));
                    foreach (var item in items)
                    {
                        list.Add(Bind(item, args[0], depth + 1));
                    }
                    return list;
                }
                if ((def == typeof(Dictionary<,>) || def == typeof(IDictionary<,>)
                     || def == typeof(IReadOnlyDictionary<,>)) && args[0] == typeof(string))
                {
                    var obj = node as Dictionary<string, object>;
                    if (obj == null)
                    {
                        throw Mismatch(node, t);
                    }
                    var dict = (IDictionary)Activator.CreateInstance(typeof(Dictionary<,>).MakeGenericType(args));
                    foreach (var kv in obj)
                    {
                        dict[kv.Key] = Bind(kv.Value, args[1], depth + 1);
                    }
                    return dict;
                }
            }
            var members = node as Dictionary<string, object>;
            if (members == null)
            {
                throw Mismatch(node, t);
            }
            object target;
            try
            {
                target = Activator.CreateInstance(t);
            }
            catch (MissingMethodException)
            {
                throw new FormatException("MiniJson: " + t.FullName + " has no public parameterless constructor");
            }
            foreach (var kv in members)
            {
                var f = FindField(t, kv.Key);
                if (f != null)
                {
                    f.SetValue(target, Bind(kv.Value, f.FieldType, depth + 1));
                    continue;
                }
                var p = FindProperty(t, kv.Key);
                if (p != null)
                {
                    p.SetValue(target, Bind(kv.Value, p.PropertyType, depth + 1), null);
                }
            }
            return target;
        }

        static FieldInfo FindField(Type t, string name)
        {
            const BindingFlags flags = BindingFlags.Public | BindingFlags.Instance;
            var f = t.GetField(name, flags) ?? t.GetField(name, flags | BindingFlags.IgnoreCase);
            return f != null && !f.IsInitOnly && !f.IsLiteral ? f : null;
        }

        static PropertyInfo FindProperty(Type t, string name)
        {
            const BindingFlags flags = BindingFlags.Public | BindingFlags.Instance;
            PropertyInfo p;
            try
            {
                p = t.GetProperty(name, flags) ?? t.GetProperty(name, flags | BindingFlags.IgnoreCase);
            }
            catch (AmbiguousMatchException)
            {
                return null;
            }
            return p != null && p.CanWrite && p.GetSetMethod() != null && p.GetIndexParameters().Length == 0 ? p : null;
        }

        static FormatException Mismatch(object node, Type t)
        {
            var what = node == null ? "null"
                : node is string ? "a string"
                : node is bool ? "a boolean"
                : node is List<object> ? "an array"
                : node is Dictionary<string, object> ? "an object"
                : "a number";
            return new FormatException("MiniJson: expected " + t.Name + ", found " + what);
        }

        // ---- parsing ----

        sealed class Parser
        {
            readonly string s;
            internal int Pos;

            internal Parser(string text)
            {
                s = text;
            }

            internal FormatException Error(string why)
            {
                return new FormatException("MiniJson: " + why + " at offset " + Pos);
            }

            internal void SkipSpace()
            {
                while (Pos < s.Length && (s[Pos] == ' ' || s[Pos] == '\t' || s[Pos] == '\n' || s[Pos] == '\r'))
                {
                    Pos++;
                }
            }

            internal object ReadValue(int depth)
            {
                if (depth > MaxDepth)
                {
                    throw Error("nesting deeper than " + MaxDepth);
                }
                if (Pos >= s.Length)
                {
                    throw Error("unexpected end");
                }
                var c = s[Pos];
                switch (c)
                {
                    case '{': return ReadObject(depth);
                    case '[': return ReadArray(depth);
                    case '"': return ReadString();
                    case 't': Expect("true"); return true;
                    case 'f': Expect("false"); return false;
                    case 'n': Expect("null"); return null;
                    default:
                        if (c == '-' || (c >= '0' && c <= '9'))
                        {
                            return ReadNumber();
                        }
                        throw Error("unexpected character '" + c + "'");
                }
            }

            void Expect(string word)
            {
                if (string.CompareOrdinal(s, Pos, word, 0, word.Length) != 0)
                {
                    throw Error("expected " + word);
                }
                Pos += word.Length;
            }

            Dictionary<string, object> ReadObject(int depth)
            {
                var obj = new Dictionary<string, object>();
                Pos++;
                SkipSpace();
                if (Pos < s.Length && s[Pos] == '}')
                {
                    Pos++;
                    return obj;
                }
                while (true)
                {
                    SkipSpace();
                    if (Pos >= s.Length || s[Pos] != '"')
                    {
                        throw Error("expected a member name");
                    }
                    var key = ReadString();
                    SkipSpace();
                    if (Pos >= s.Length || s[Pos] != ':')
                    {
                        throw Error("expected ':'");
                    }
                    Pos++;
                    SkipSpace();
                    obj[key] = ReadValue(depth + 1);
                    SkipSpace();
                    if (Pos < s.Length && s[Pos] == ',')
                    {
                        Pos++;
                        continue;
                    }
                    if (Pos < s.Length && s[Pos] == '}')
                    {
                        Pos++;
                        return obj;
                    }
                    throw Error("expected ',' or '}'");
                }
            }

            List<object> ReadArray(int depth)
            {
                var list = new List<object>();
                Pos++;
                SkipSpace();
                if (Pos < s.Length && s[Pos] == ']')
                {
                    Pos++;
                    return list;
                }
                while (true)
                {
                    SkipSpace();
                    list.Add(ReadValue(depth + 1));
                    SkipSpace();
                    if (Pos < s.Length && s[Pos] == ',')
                    {
                        Pos++;
                        continue;
                    }
                    if (Pos < s.Length && s[Pos] == ']')
                    {
                        Pos++;
                        return list;
                    }
                    throw Error("expected ',' or ']'");
                }
            }

            string ReadString()
            {
                Pos++;
                var sb = new StringBuilder();
                while (true)
                {
                    if (Pos >= s.Length)
                    {
                        throw Error("unterminated string");
                    }
                    var c = s[Pos++];
                    if (c == '"')
                    {
                        return sb.ToString();
                    }
                    if (c < 0x20)
                    {
                        throw Error("control character in a string");
                    }
                    if (c != '\\')
                    {
                        sb.Append(c);
                        continue;
                    }
                    if (Pos >= s.Length)
                    {
                        throw Error("unterminated escape");
                    }
                    var e = s[Pos++];
                    switch (e)
                    {
                        case '"': sb.Append('"'); break;
                        case '\\': sb.Append('\\'); break;
                        case '/': sb.Append('/'); break;
                        case 'b': sb.Append('\b'); break;
                        case 'f': sb.Append('\f'); break;
                        case 'n': sb.Append('\n'); break;
                        case 'r': sb.Append('\r'); break;
                        case 't': sb.Append('\t'); break;
                        case 'u':
                            if (Pos + 4 > s.Length)
                            {
                                throw Error("short \\u escape");
                            }
                            int code;
                            if (!int.TryParse(s.Substring(Pos, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out code))
                            {
                                throw Error("bad \\u escape");
                            }
                            sb.Append((char)code);
                            Pos += 4;
                            break;
                        default:
                            throw Error("bad escape '\\" + e + "'");
                    }
                }
            }

            object ReadNumber()
            {
                var start = Pos;
                if (s[Pos] == '-')
                {
                    Pos++;
                }
                var integral = true;
                var digits = 0;
                while (Pos < s.Length)
                {
                    var c = s[Pos];
                    if (c >= '0' && c <= '9')
                    {
                        digits++;
                    }
                    else if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')
                    {
                        integral = false;
                    }
                    else
                    {
                        break;
                    }
                    Pos++;
                }
                if (digits == 0)
                {
                    throw Error("bad number");
                }
                var text = s.Substring(start, Pos - start);
                if (integral)
                {
                    long l;
                    if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out l))
                    {
                        return l;
                    }
                    ulong ul;
                    if (ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out ul))
                    {
                        return ul;
                    }
                }
                double d;
                if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out d))
                {
                    throw Error("bad number '" + text + "'");
                }
                return d;
            }
        }
    }
}
