// A Java mTLS client as a user writes one: KeyStore PKCS12 + KeyManagerFactory over the
// bundle, a TrustManagerFactory over ca.crt, HttpsURLConnection. Run: java Client.java
// BUNDLE.p12 CA.crt URL (the tests compile it once: javac, then java -cp DIR Client), with
// the bundle password on the first line of stdin (an empty line: the empty password,
// given as new char[0] -- with null Java sends no certificate).
import java.io.BufferedReader;
import java.io.FileInputStream;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import javax.net.ssl.HttpsURLConnection;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

public class Client {
    public static void main(String[] args) throws Exception {
        String line = new BufferedReader(new InputStreamReader(System.in)).readLine();
        char[] password = line == null ? new char[0] : line.toCharArray();
        KeyStore keys = KeyStore.getInstance("PKCS12");
        try (InputStream in = new FileInputStream(args[0])) {
            keys.load(in, password);
        }
        System.out.println("entries=" + keys.size());
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(keys, password);
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        try (InputStream in = new FileInputStream(args[1])) {
            trust.setCertificateEntry("ca", CertificateFactory.getInstance("X.509").generateCertificate(in));
        }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);
        HttpsURLConnection conn = (HttpsURLConnection) new URL(args[2]).openConnection();
        conn.setSSLSocketFactory(ctx.getSocketFactory());
        int status = conn.getResponseCode();
        InputStream body = status < 400 ? conn.getInputStream() : conn.getErrorStream();
        System.out.println("status=" + status);
        System.out.println(new String(body.readAllBytes(), StandardCharsets.UTF_8));
    }
}
