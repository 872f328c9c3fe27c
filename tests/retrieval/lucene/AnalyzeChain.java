import java.io.*;
import java.nio.charset.StandardCharsets;
import java.util.*;
import org.apache.lucene.analysis.*;
import org.apache.lucene.analysis.custom.CustomAnalyzer;
import org.apache.lucene.analysis.tokenattributes.*;

/** Prints what a Lucene analysis chain emits for each stdin line: [term] posInc posLen start end. Arguments:
 *  tokenizer:NAME key=value ... filter:NAME key=value ... (Lucene factory names). */

public class AnalyzeChain {
  public static void main(String[] args) throws Exception {
    CustomAnalyzer.Builder b = CustomAnalyzer.builder();
    String kind = null, name = null; Map<String,String> params = new HashMap<>();
    List<Object[]> steps = new ArrayList<>();
    for (String a : args) {
      if (a.startsWith("tokenizer:") || a.startsWith("filter:")) {
        if (kind != null) steps.add(new Object[]{kind, name, params});
        kind = a.substring(0, a.indexOf(':')); name = a.substring(a.indexOf(':') + 1); params = new HashMap<>();
      } else { int i = a.indexOf('='); params.put(a.substring(0, i), a.substring(i + 1)); }
    }
    if (kind != null) steps.add(new Object[]{kind, name, params});
    for (Object[] s : steps) {
      @SuppressWarnings("unchecked") Map<String,String> p = (Map<String,String>) s[2];
      if (s[0].equals("tokenizer")) b.withTokenizer((String) s[1], p); else b.addTokenFilter((String) s[1], p);
    }
    Analyzer an = b.build();
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    PrintStream out = new PrintStream(System.out, true, "UTF-8");
    String line;
    while ((line = in.readLine()) != null) {
      try (TokenStream ts = an.tokenStream("f", line)) {
        CharTermAttribute t = ts.addAttribute(CharTermAttribute.class);
        PositionIncrementAttribute pi = ts.addAttribute(PositionIncrementAttribute.class);
        PositionLengthAttribute pl = ts.addAttribute(PositionLengthAttribute.class);
        OffsetAttribute off = ts.addAttribute(OffsetAttribute.class);
        ts.reset();
        while (ts.incrementToken()) out.println("[" + t + "]\t" + pi.getPositionIncrement() + "\t" + pl.getPositionLength()
            + "\t" + off.startOffset() + "\t" + off.endOffset());
        ts.end();
      }
      out.println();
    }
  }
}
