/* Structs passed and returned by value, arrays of structs, floating point with libm. */
#include <math.h>
#include <stdio.h>
#include <string.h>

struct vec3 {
    double x, y, z;
};

struct particle {
    struct vec3 pos, vel;
    double mass;
    int id;
    char tag[12];
};

struct mat3 {
    double m[3][3];
};

static struct vec3 vadd(struct vec3 a, struct vec3 b) { return (struct vec3){a.x + b.x, a.y + b.y, a.z + b.z}; }
static struct vec3 vsub(struct vec3 a, struct vec3 b) { return (struct vec3){a.x - b.x, a.y - b.y, a.z - b.z}; }
static struct vec3 vscale(struct vec3 a, double s) { return (struct vec3){a.x * s, a.y * s, a.z * s}; }
static double vdot(struct vec3 a, struct vec3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
static double vnorm(struct vec3 a) { return sqrt(vdot(a, a)); }

static struct vec3 vcross(struct vec3 a, struct vec3 b)
{
    return (struct vec3){a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x};
}

static struct mat3 rotation_z(double angle)
{
    double c = cos(angle), s = sin(angle);
    struct mat3 r = {{{c, -s, 0}, {s, c, 0}, {0, 0, 1}}};
    return r;
}

static struct mat3 mat_mul(struct mat3 a, struct mat3 b)
{
    struct mat3 r;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            r.m[i][j] = 0;
            for (int k = 0; k < 3; k++)
                r.m[i][j] += a.m[i][k] * b.m[k][j];
        }
    return r;
}

static struct vec3 mat_apply(const struct mat3 *m, struct vec3 v)
{
    return (struct vec3){
        m->m[0][0] * v.x + m->m[0][1] * v.y + m->m[0][2] * v.z,
        m->m[1][0] * v.x + m->m[1][1] * v.y + m->m[1][2] * v.z,
        m->m[2][0] * v.x + m->m[2][1] * v.y + m->m[2][2] * v.z,
    };
}

static struct particle swarm[16];
double gravity = 9.81;
const struct vec3 origin = {0.5, -0.25, 2.0};

static void init_swarm(int n)
{
    for (int i = 0; i < n; i++) {
        struct particle *p = &swarm[i];
        memset(p, 0, sizeof *p);
        p->id = i;
        p->mass = 1.0 + i * 0.25;
        p->pos = vadd(origin, (struct vec3){cos(i * 0.7), sin(i * 0.7), i * 0.1});
        p->vel = (struct vec3){0.1 * i, -0.05 * i, 1.0};
        snprintf(p->tag, sizeof p->tag, "p%02u", (unsigned)i % 100u);
    }
}

double simulate(int steps)
{
    const int n = 16;
    const double dt = 0.01;
    init_swarm(n);
    struct mat3 spin = mat_mul(rotation_z(0.01), rotation_z(0.02));
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < n; i++) {
            struct particle *p = &swarm[i];
            struct vec3 to_center = vsub(origin, p->pos);
            double d = vnorm(to_center) + 0.1;
            struct vec3 pull = vscale(to_center, gravity / (d * d * d));
            p->vel = vadd(vscale(p->vel, exp(-0.01)), vscale(pull, dt));
            p->pos = vadd(mat_apply(&spin, p->pos), vscale(p->vel, dt));
        }
    }
    double energy = 0;
    for (int i = 0; i < n; i++)
        energy += 0.5 * swarm[i].mass * vdot(swarm[i].vel, swarm[i].vel);
    return energy;
}

double polygon_area(int sides, double radius)
{
    double area = 0;
    for (int i = 0; i < sides; i++) {
        double a0 = 2 * M_PI * i / sides, a1 = 2 * M_PI * (i + 1) / sides;
        area += radius * cos(a0) * radius * sin(a1) - radius * cos(a1) * radius * sin(a0);
    }
    return fabs(area) / 2;
}

double statistics(int n)
{
    double sum = 0, sq = 0, geo = 0;
    for (int i = 1; i <= n; i++) {
        double v = pow(i, 1.5) + fmod(i * 7.3, 2.9) + floor(log(i + 1.0) * 3);
        sum += v;
        sq += v * v;
        geo += log(v);
    }
    double mean = sum / n;
    double sd = sqrt(sq / n - mean * mean);
    return mean + sd / 10 + exp(geo / n) / 100 + atan2(sd, mean) + hypot(3, n);
}

double triangle_normal(double skew)
{
    struct vec3 a = {0, 0, 0}, b = {1, skew, 0}, c = {skew, 1, 1};
    struct vec3 nrm = vcross(vsub(b, a), vsub(c, a));
    return vnorm(nrm) + atan(nrm.z) + cbrt(fabs(nrm.x) + 1);
}

int report_swarm(int count)
{
    int checksum = 0;
    for (int i = 0; i < count && i < 16; i++) {
        printf("%s mass=%.3f pos=(%.4f, %.4f, %.4f)\n", swarm[i].tag, swarm[i].mass,
               swarm[i].pos.x, swarm[i].pos.y, swarm[i].pos.z);
        checksum += (int)lround(swarm[i].pos.x * 1000) + swarm[i].id;
    }
    fflush(NULL);
    return checksum;
}
