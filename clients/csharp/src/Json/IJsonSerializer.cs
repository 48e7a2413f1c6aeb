// The pluggable JSON layer: the client turns payload objects into JSON text
// and answers back into objects only through this interface.

namespace ZinxCluster.Client
{
    /// <summary>
    /// Turns payload objects into JSON text and back. The client calls
    /// <see cref="Serialize"/> on the thread that sends (Request, Send) and
    /// <see cref="Deserialize{T}"/> inside <see cref="ZinxClient.Poll"/>.
    /// </summary>
    /// <remarks>
    /// The built-in <see cref="MiniJson"/> covers simple DTOs. In Unity, plug
    /// in <c>JsonUtility</c> or Newtonsoft (see the README):
    /// <code>
    /// sealed class UnityJson : IJsonSerializer {
    ///     public string Serialize(object value) { return JsonUtility.ToJson(value); }
    ///     public T Deserialize&lt;T&gt;(string json) { return JsonUtility.FromJson&lt;T&gt;(json); }
    /// }
    /// </code>
    /// A <c>null</c> payload never reaches the serializer: it is sent as the
    /// JSON <c>null</c>.
    /// </remarks>
    public interface IJsonSerializer
    {
        /// <summary>The JSON text of <paramref name="value"/> (never null).</summary>
        string Serialize(object value);

        /// <summary>The value the JSON text holds.</summary>
        T Deserialize<T>(string json);
    }
}
