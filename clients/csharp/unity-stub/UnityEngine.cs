// Just enough of UnityEngine's surface to compile the README's chat example
// (test.sh does, so that the example cannot rot). Not a Unity replacement:
// nothing here runs.

namespace UnityEngine
{
    public class Object
    {
    }

    public class Component : Object
    {
    }

    public class Behaviour : Component
    {
    }

    public class MonoBehaviour : Behaviour
    {
    }

    public static class JsonUtility
    {
        public static string ToJson(object obj)
        {
            throw new System.NotImplementedException("stub");
        }

        public static T FromJson<T>(string json)
        {
            throw new System.NotImplementedException("stub");
        }
    }

    public static class GUILayout
    {
        public static void Label(string text)
        {
        }

        public static string TextField(string text)
        {
            return text;
        }

        public static bool Button(string text)
        {
            return false;
        }
    }

    public static class Debug
    {
        public static void Log(object message)
        {
        }
    }
}
